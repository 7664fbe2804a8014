/* The link firmware for STM32F4 (F405/F407/F446; tested under QEMU netduinoplus2): the link
 * USART <-> es_link, forever. After the UART is up it sends a one-line ready banner (QEMU drops
 * bytes that arrive before the USART is enabled, so the host waits for it; a host that
 * connects later sees nothing: the banner is not a frame and is skipped). An open stream runs
 * its due steps between received chunks (es_link_poll), sleeping on WFI with TIM2 as the
 * wake-up. Cycles: the DWT's CYCCNT on silicon, SysTick (instructions) under QEMU. */
#include "stm32f4.h"
#include "es_cm_serve.h"

#ifndef ES_STM32_BOARD
#define ES_STM32_BOARD "stm32f4"
#endif

/* The banner ends with 0x00, so a host frame decoder drops it as one bad frame. */
static const uint8_t k_banner[] = "\r\nES-READY stm32f4\r\n";

/* The link with its two model slots: most of the 128 KB SRAM (see stm32f405.ld). */
static es_link_t g_link;

int main(void)
{
    es_stm32_clocks_t clk;
    es_port_t p;
    int dwt;
    es_stm32_clock_init(&clk);
    dwt = es_cycles_init(clk.sysclk_hz);
    p.write = es_uart_write;
    p.cycles = es_cycles_read;
    p.cycle_source = dwt ? ES_CYCLES_DWT : ES_CYCLES_QEMU_ICOUNT;
    p.ctx = 0;
    /* RCC reading as zeros means QEMU's netduinoplus2 (see clock.c). */
    p.board = clk.emulated ? "netduinoplus2" : ES_STM32_BOARD;
    p.core = "cortex-m4";
    p.clock_hz = clk.sysclk_hz;
    p.flash_bytes = es_stm32_flash_bytes();
    p.ram_bytes = es_stm32_ram_bytes();
    /* DWT counts core cycles; the SysTick fallback returns ns of virtual time. */
    p.cycles_per_us = dwt ? clk.sysclk_hz / 1000000u : 1000u;
    p.build_id_len = es_cm_build_id(&p.build_id);
    es_link_init(&g_link, &p);
    es_uart_init(clk.usart_hz);
    es_timer_init(clk.tim_hz, clk.emulated);
    es_uart_write(0, k_banner, sizeof(k_banner)); /* the terminating 0x00 included */
    es_cm_serve_forever(&g_link, es_uart_overruns);
}
