/* Cortex-M4F startup for mps2-an386: vector table, reset (FPU on, .data copy, .bss zero,
 * main, exit) and fault handlers that leave QEMU through semihosting instead of hanging. */
#include <stdint.h>
#include <stddef.h>

#include "mps2.h"

extern uint32_t _estack, __es_flash_end;
extern int main(void);

void Reset_Handler(void);
void Default_Handler(void);
void HardFault_Handler(void);
void NMI_Handler(void) __attribute__((weak, alias("Default_Handler")));
void MemManage_Handler(void) __attribute__((weak, alias("HardFault_Handler")));
void BusFault_Handler(void) __attribute__((weak, alias("HardFault_Handler")));
void UsageFault_Handler(void) __attribute__((weak, alias("HardFault_Handler")));
void SVC_Handler(void) __attribute__((weak, alias("Default_Handler")));
void DebugMon_Handler(void) __attribute__((weak, alias("Default_Handler")));
void PendSV_Handler(void) __attribute__((weak, alias("Default_Handler")));
void SysTick_Handler(void) __attribute__((weak, alias("Default_Handler")));
void UART0RX_Handler(void) __attribute__((weak, alias("Default_Handler")));
void TIMER0_Handler(void) __attribute__((weak, alias("Default_Handler")));

typedef void (*es_vector_t)(void);

/* 16 system exceptions + 32 interrupts; IRQ 0 is UART0 RX on mps2-an386. */
__attribute__((section(".isr_vector"), used)) const es_vector_t es_vectors[16 + 32] = {
    (es_vector_t)(uintptr_t)&_estack,
    Reset_Handler,
    NMI_Handler,
    HardFault_Handler,
    MemManage_Handler,
    BusFault_Handler,
    UsageFault_Handler,
    0, 0, 0, 0,
    SVC_Handler,
    DebugMon_Handler,
    0,
    PendSV_Handler,
    SysTick_Handler,
    UART0RX_Handler, /* IRQ 0 */
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, TIMER0_Handler, /* IRQ 8 */ Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler,
};

/* main's return goes through newlib's exit (which flushes the tests' printf output) when the
 * program links it anyway, else straight to semihosting: a weak reference keeps exit and its
 * atexit machinery out of the link firmware, whose main never returns. */
extern void exit(int) __attribute__((weak, noreturn));

void Reset_Handler(void)
{
    es_cm_start_c_runtime();
    const int rc = main();
    if (exit != NULL) {
        exit(rc);
    }
    es_sh_exit(rc);
}

void HardFault_Handler(void)
{
    es_sh_write0("edgespike: fault\n");
    es_sh_exit(134);
}

void Default_Handler(void)
{
    es_sh_write0("edgespike: unexpected interrupt\n");
    es_sh_exit(135);
}

uint32_t es_mps2_flash_bytes(void)
{
    return (uint32_t)(uintptr_t)&__es_flash_end;
}

uint32_t es_mps2_ram_bytes(void)
{
    return (uint32_t)((uintptr_t)&_ebss - (uintptr_t)&_sdata);
}
