/* mps2-an386 registers and the port's small drivers (UART0, SysTick, semihosting). */
#ifndef ES_MPS2_H
#define ES_MPS2_H

#include <stddef.h>
#include <stdint.h>

#include "es_cortex_m.h" /* SysTick, SCB, ring and sleep helpers shared by the ports */

#define ES_MPS2_CLOCK_HZ 25000000u
/* Under QEMU -icount shift=0 one instruction takes 1 ns and SysTick ticks at 25 MHz: one
 * tick = 40 instructions. */
#define ES_MPS2_INSNS_PER_TICK 40u

#define REG32(addr) (*(volatile uint32_t *)(addr))

/* CMSDK APB UART0 */
#define UART0_BASE 0x40004000u
#define UART_DATA REG32(UART0_BASE + 0x00u)
#define UART_STATE REG32(UART0_BASE + 0x04u)
#define UART_CTRL REG32(UART0_BASE + 0x08u)
#define UART_INTSTATUS REG32(UART0_BASE + 0x0Cu) /* write 1s to clear */
#define UART_BAUDDIV REG32(UART0_BASE + 0x10u)
#define UART_STATE_TXFULL 0x1u
#define UART_STATE_RXFULL 0x2u
#define UART_CTRL_TXEN 0x1u
#define UART_CTRL_RXEN 0x2u
#define UART_CTRL_RXINTEN 0x8u
#define UART_INT_RX 0x2u
#define UART0_RX_IRQ 0u

/* System control space */
#define NVIC_ISER0 REG32(0xE000E100u)
#define NVIC_ICER0 REG32(0xE000E180u)

/* ---- UART0 with an interrupt-driven RX ring (uart.c) ---------------------------------- */
#define ES_UART_RING 4096u /* power of two */
void es_uart_init(void);
void es_uart_write(void *ctx, const uint8_t *data, size_t n);
/* Contiguous received bytes, without copying: returns how many are at *p (0: none). */
size_t es_uart_peek(const uint8_t **p);
void es_uart_consume(size_t n);
/* Main-loop side of the backpressure: poll and unmask RX if the ISR masked it; then sleep
 * until an interrupt if nothing is pending. */
void es_uart_idle(void);

/* Like es_uart_idle, but also wakes after at most us microseconds (CMSDK TIMER0). */
void es_uart_idle_for(uint32_t us);

/* ---- CMSDK APB TIMER0 as a one-shot wake-up (uart.c) ------------------------------------ */
#define TIMER0_BASE 0x40000000u
#define TIMER0_CTRL REG32(TIMER0_BASE + 0x00u)
#define TIMER0_VALUE REG32(TIMER0_BASE + 0x04u)
#define TIMER0_RELOAD REG32(TIMER0_BASE + 0x08u)
#define TIMER0_INTCLEAR REG32(TIMER0_BASE + 0x0Cu)
#define TIMER_CTRL_EN 0x1u
#define TIMER_CTRL_IRQEN 0x8u
#define TIMER0_IRQ 8u
void es_timer_init(void);

/* ---- SysTick as a 64-bit counter (systick.c) ------------------------------------------- */
void es_systick_init(void);
uint64_t es_systick_ticks(void);
/* es_cycle_fn: ticks * 40 = instructions under -icount shift=0 (CYCLES_QEMU_ICOUNT). */
uint64_t es_systick_cycles(void *ctx);

/* ---- Semihosting (semihost.c) -------------------------------------------------------- */
int es_sh_open(const char *path, int mode); /* mode: 1 "rb", 5 "wb"; returns fd or -1 */
int es_sh_close(int fd);
long es_sh_flen(int fd);
/* Return the number of bytes NOT transferred (0: all), as semihosting does. */
long es_sh_read(int fd, void *buf, size_t n);
long es_sh_write(int fd, const void *buf, size_t n);
void es_sh_write0(const char *s);
void es_sh_exit(int code) __attribute__((noreturn));

/* Image facts for DeviceInfo, from linker symbols. */
uint32_t es_mps2_flash_bytes(void);
uint32_t es_mps2_ram_bytes(void);

#endif /* ES_MPS2_H */
