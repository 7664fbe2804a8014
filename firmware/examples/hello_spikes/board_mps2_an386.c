/* hello_spikes on QEMU's mps2-an386 (Cortex-M4F): the vector table, the reset handler that
 * sets up C (FPU on, .data copied from flash, .bss zeroed) and calls main, and board_print /
 * board_exit through Arm semihosting (QEMU: -semihosting-config enable=on,target=native).
 * This is what a vendor's startup file and a UART driver do on a real board. */
#include <stdint.h>

#include "board.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack; /* mps2_an386.ld */
int main(void);

static int semihost(int op, const void *arg)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void board_print(const char *text)
{
    (void)semihost(0x04, text); /* SYS_WRITE0 */
}

void board_exit(int code)
{
    uint32_t args[2] = {0x20026u, (uint32_t)code}; /* ADP_Stopped_ApplicationExit, code */
    (void)semihost(0x20, args);                     /* SYS_EXIT_EXTENDED */
    for (;;) {
    }
}

void Reset_Handler(void)
{
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20; /* CPACR: CP10, CP11 full access */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    for (uint32_t *src = &_sidata, *dst = &_sdata; dst < &_edata;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = &_sbss; dst < &_ebss;) {
        *dst++ = 0;
    }
    board_exit(main());
}

static void Fault_Handler(void)
{
    board_print("hello_spikes: fault\n");
    board_exit(134);
}

/* The first 16 entries (the core's exceptions); the example uses no interrupt. */
__attribute__((section(".isr_vector"), used)) static void (*const g_vectors[16])(void) = {
    (void (*)(void))(&_estack), Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, Fault_Handler, 0, 0, 0, 0, Fault_Handler, Fault_Handler, 0, Fault_Handler,
    Fault_Handler};
