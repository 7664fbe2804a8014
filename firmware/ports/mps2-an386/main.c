/* The link firmware for mps2-an386: UART0 <-> es_link, forever. Sends nothing unsolicited:
 * the host starts with Hello. Cycles: SysTick under QEMU -icount shift=0. */
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
    es_systick_init();
    es_link_init(&g_link, &p);
    es_uart_init();
    for (;;) {
        const uint8_t *data;
        size_t n = es_uart_peek(&data);
        if (n > 0) {
            es_link_rx(&g_link, data, n);
            es_uart_consume(n);
        } else {
            es_uart_idle();
        }
    }
}
