/* Cortex-M4F startup for STM32F4: vector table (16 system exceptions + 98 interrupts, enough
 * for F405/F407/F446), reset (FPU on, .data copy, .bss zeroing, main) and fault
 * handlers that print one line on the link USART and stop (no semihosting: on a real board
 * without a debugger a bkpt would fault again). */
#include <stdint.h>

#include "stm32f4.h"

extern uint32_t _estack;
extern uint32_t __es_flash_end;
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
void TIM2_IRQHandler(void) __attribute__((weak, alias("Default_Handler")));
void USART1_IRQHandler(void) __attribute__((weak, alias("Default_Handler")));
void USART2_IRQHandler(void) __attribute__((weak, alias("Default_Handler")));

typedef void (*es_vector_t)(void);

#define D Default_Handler
#define D4 D, D, D, D
#define D8 D4, D4
#define D16 D8, D8

__attribute__((section(".isr_vector"), used)) const es_vector_t es_vectors[16 + 98] = {
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
    D16, D8, D4,           /* IRQ 0-27 */
    TIM2_IRQHandler,       /* IRQ 28 */
    D8,                    /* IRQ 29-36 */
    USART1_IRQHandler,     /* IRQ 37 */
    USART2_IRQHandler,     /* IRQ 38 */
    D16, D16, D16, D8, D, D, D, /* IRQ 39-97 */
};

void Reset_Handler(void)
{
    es_cm_start_c_runtime();
    (void)main();
    for (;;) {
        __asm__ volatile("wfi");
    }
}

/* Polled output for the fault handlers: the USART may be in any state, so no waiting for
 * an interrupt, and a bounded wait per byte. */
static void panic(const char *msg)
{
    __asm__ volatile("cpsid i" ::: "memory");
    for (; *msg; msg++) {
        uint32_t i;
        for (i = 0; i < 100000u && !(USART_SR & USART_SR_TXE); i++) {
        }
        USART_DR = (uint8_t)*msg;
    }
    for (;;) {
    }
}

void HardFault_Handler(void)
{
    panic("\r\nedgespike: fault\r\n");
}

void Default_Handler(void)
{
    panic("\r\nedgespike: unexpected interrupt\r\n");
}

uint32_t es_stm32_flash_bytes(void)
{
    return (uint32_t)((uintptr_t)&__es_flash_end - 0x08000000u);
}

uint32_t es_stm32_ram_bytes(void)
{
    return (uint32_t)((uintptr_t)&_ebss - (uintptr_t)&_sdata);
}
