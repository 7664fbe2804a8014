/* STM32F4 port: registers, board constants and the port's small drivers (clock, USART,
 * TIM2 wake-up, cycle counter). Tested under QEMU `-M netduinoplus2` (STM32F405); written
 * for real STM32F405/F407/F446 silicon (see README.md for what was and was not run). */
#ifndef ES_STM32F4_H
#define ES_STM32F4_H

#include <stddef.h>
#include <stdint.h>

#include "es_cortex_m.h" /* SysTick, SCB, ring and sleep helpers shared by the ports */

#define REG32(addr) (*(volatile uint32_t *)(addr))

/* ---- Board constants (clock.c) ---------------------------------------------------------- */
/* HSI 16 MHz -> PLL: VCO in = 16/M = 1 MHz, VCO = 1 * N = 336 MHz, SYSCLK = VCO/P = 168 MHz,
 * 48 MHz domain = VCO/Q = 48 MHz. AHB /1, APB1 /4 (42 MHz), APB2 /2 (84 MHz); timers on APB1
 * run at 2 x PCLK1 = 84 MHz. Flash: 5 wait states at 168 MHz, 2.7-3.6 V. Valid on F405/F407
 * (168 MHz max) and F446 (180 MHz max; 168 MHz needs no over-drive). */
#define ES_STM32_HSI_HZ 16000000u
#define ES_STM32_PLL_M 16u
#define ES_STM32_PLL_N 336u
#define ES_STM32_PLL_P 2u
#define ES_STM32_PLL_Q 7u
#define ES_STM32_SYSCLK_HZ 168000000u
#define ES_STM32_PCLK1_HZ (ES_STM32_SYSCLK_HZ / 4u)
#define ES_STM32_PCLK2_HZ (ES_STM32_SYSCLK_HZ / 2u)
#define ES_STM32_TIM_APB1_HZ (2u * ES_STM32_PCLK1_HZ)
#define ES_STM32_FLASH_LATENCY 5u
/* QEMU's netduinoplus2 ignores RCC (its registers read 0): the CPU and SysTick run at a fixed
 * 168 MHz and TIM2-5 count at a fixed 1 GHz. */
#define ES_QEMU_TIM_HZ 1000000000u

#ifndef ES_STM32_BAUD
#define ES_STM32_BAUD 115200u
#endif
/* The USART the link uses: 1 (default; PA9/PA10 AF7, the only one tested, under QEMU) or
 * 2 (PA2/PA3 AF7: the ST-LINK virtual COM port on Nucleo-64 boards such as the F446RE). */
#ifndef ES_STM32_USART
#define ES_STM32_USART 1
#endif

/* What es_stm32_clock_init achieved. */
typedef struct {
    uint32_t sysclk_hz;   /* core clock */
    uint32_t usart_hz;    /* the link USART's kernel clock (PCLK2 for USART1, PCLK1 for 2) */
    uint32_t tim_hz;      /* TIM2's counter clock before its prescaler */
    int emulated;         /* 1: RCC reads as all zeros (QEMU); the fixed QEMU clocks apply */
    int pll_locked;       /* 1: SYSCLK comes from the PLL */
} es_stm32_clocks_t;

/* RCC, flash wait states and the peripheral clocks this port uses (one function). */
void es_stm32_clock_init(es_stm32_clocks_t *c);

/* ---- RCC / FLASH / GPIO ---------------------------------------------------------------- */
#define RCC_BASE 0x40023800u
#define RCC_CR REG32(RCC_BASE + 0x00u)
#define RCC_PLLCFGR REG32(RCC_BASE + 0x04u)
#define RCC_CFGR REG32(RCC_BASE + 0x08u)
#define RCC_AHB1ENR REG32(RCC_BASE + 0x30u)
#define RCC_APB1ENR REG32(RCC_BASE + 0x40u)
#define RCC_APB2ENR REG32(RCC_BASE + 0x44u)
#define RCC_CR_HSION (1u << 0)
#define RCC_CR_HSIRDY (1u << 1)
#define RCC_CR_PLLON (1u << 24)
#define RCC_CR_PLLRDY (1u << 25)
#define FLASH_ACR REG32(0x40023C00u)
#define PWR_CR REG32(0x40007000u)
#define GPIOA_BASE 0x40020000u
#define GPIOA_MODER REG32(GPIOA_BASE + 0x00u)
#define GPIOA_OSPEEDR REG32(GPIOA_BASE + 0x08u)
#define GPIOA_PUPDR REG32(GPIOA_BASE + 0x0Cu)
#define GPIOA_AFRL REG32(GPIOA_BASE + 0x20u)
#define GPIOA_AFRH REG32(GPIOA_BASE + 0x24u)

/* ---- USART (uart.c) ------------------------------------------------------------------- */
#if ES_STM32_USART == 1
#define USART_BASE 0x40011000u
#define USART_IRQ 37u
#elif ES_STM32_USART == 2
#define USART_BASE 0x40004400u
#define USART_IRQ 38u
#else
#error "ES_STM32_USART must be 1 or 2"
#endif
#define USART_SR REG32(USART_BASE + 0x00u)
#define USART_DR REG32(USART_BASE + 0x04u)
#define USART_BRR REG32(USART_BASE + 0x08u)
#define USART_CR1 REG32(USART_BASE + 0x0Cu)
#define USART_CR2 REG32(USART_BASE + 0x10u)
#define USART_CR3 REG32(USART_BASE + 0x14u)
#define USART_SR_ORE (1u << 3)
#define USART_SR_RXNE (1u << 5)
#define USART_SR_TXE (1u << 7)
#define USART_CR1_RE (1u << 2)
#define USART_CR1_TE (1u << 3)
#define USART_CR1_RXNEIE (1u << 5)
#define USART_CR1_UE (1u << 13)

/* ---- TIM2 (a 32-bit timer) as a one-shot wake-up (uart.c) ------------------------------- */
#define TIM2_BASE 0x40000000u
#define TIM2_CR1 REG32(TIM2_BASE + 0x00u)
#define TIM2_DIER REG32(TIM2_BASE + 0x0Cu)
#define TIM2_SR REG32(TIM2_BASE + 0x10u)
#define TIM2_EGR REG32(TIM2_BASE + 0x14u)
#define TIM2_CNT REG32(TIM2_BASE + 0x24u)
#define TIM2_PSC REG32(TIM2_BASE + 0x28u)
#define TIM2_ARR REG32(TIM2_BASE + 0x2Cu)
#define TIM_CR1_CEN (1u << 0)
#define TIM_DIER_UIE (1u << 0)
#define TIM_EGR_UG (1u << 0)
#define TIM2_IRQ 28u

/* ---- System control space ---------------------------------------------------------------- */
#define NVIC_ISER(n) REG32(0xE000E100u + 4u * (n))
#define NVIC_ICER(n) REG32(0xE000E180u + 4u * (n))
#define SCB_DEMCR REG32(0xE000EDFCu)
#define DWT_CTRL REG32(0xE0001000u)
#define DWT_CYCCNT REG32(0xE0001004u)
#define DEMCR_TRCENA (1u << 24)
#define DWT_CTRL_CYCCNTENA (1u << 0)

static inline void es_nvic_enable(uint32_t irq) { NVIC_ISER(irq >> 5) = 1u << (irq & 31u); }
static inline void es_nvic_disable(uint32_t irq) { NVIC_ICER(irq >> 5) = 1u << (irq & 31u); }

/* ---- USART with an interrupt-driven RX ring (uart.c) ----------------------------------- */
#define ES_UART_RING 2048u /* power of two; 180 ms of 115200 baud */
void es_uart_init(uint32_t usart_hz);
void es_uart_write(void *ctx, const uint8_t *data, size_t n);
size_t es_uart_peek(const uint8_t **p);
void es_uart_consume(size_t n);
void es_uart_idle(void);
void es_uart_idle_for(uint32_t us);
/* Bytes lost to USART overruns since the last call (real UARTs only; reported in Stats). */
uint32_t es_uart_overruns(void);
/* TIM2 one-shot: tim_hz is TIM2's counter clock; emulated: QEMU's model (see uart.c). */
void es_timer_init(uint32_t tim_hz, int emulated);

/* ---- Cycle counter (cycles.c) ------------------------------------------------------------- */
/* Enables the DWT cycle counter and checks that it moves; if not (QEMU does not emulate the
 * DWT), falls back to SysTick. Returns 1 for DWT, 0 for the SysTick fallback. */
int es_cycles_init(uint32_t sysclk_hz);
/* es_cycle_fn: DWT cycles, or SysTick ticks converted to ns of virtual time (= instructions
 * under QEMU -icount shift=0). */
uint64_t es_cycles_read(void *ctx);

/* Image facts for DeviceInfo, from linker symbols (startup.c). */
uint32_t es_stm32_flash_bytes(void);
uint32_t es_stm32_ram_bytes(void);

#endif /* ES_STM32F4_H */
