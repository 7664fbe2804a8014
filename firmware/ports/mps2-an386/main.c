/* The link firmware for mps2-an386: UART0 <-> es_link, forever. Sends nothing before the
 * host's Hello; an open stream runs its due steps between received chunks (es_link_poll),
 * sleeping on WFI with CMSDK TIMER0 as the wake-up. Cycles: SysTick under QEMU -icount shift=0. */
#include "es_link.h"
#include "mps2.h"

/* The link with its two model slots: static, owned by this port. */
static es_link_t g_link;

int main(void)
{
    es_port_t p;
    p.write = es_uart_write;
    p.cycles = es_systick_cycles;
    p.cycle_source = ES_CYCLES_QEMU_ICOUNT;
    p.ctx = 0;
    p.board = "mps2-an386";
    p.core = "cortex-m4";
    p.clock_hz = ES_MPS2_CLOCK_HZ;
    p.flash_bytes = es_mps2_flash_bytes();
    p.ram_bytes = es_mps2_ram_bytes();
    p.cycles_per_us = 1000u; /* es_systick_cycles counts ns of virtual time (40 per tick) */
    es_systick_init();
    es_link_init(&g_link, &p);
    es_uart_init();
    es_timer_init();
    for (;;) {
        const uint8_t *data;
        uint32_t wait_us;
        size_t n = es_uart_peek(&data);
        if (n > 0) {
            es_link_rx(&g_link, data, n);
            es_uart_consume(n);
        }
        /* Streaming: due steps run between received chunks (one per pass). */
        wait_us = es_link_poll(&g_link);
        if (n == 0 && wait_us != 0u) {
            if (wait_us == ES_LINK_IDLE) {
                es_uart_idle();
            } else {
                es_uart_idle_for(wait_us);
            }
        }
    }
}
