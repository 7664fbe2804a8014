/* The link firmware for mps2-an386: UART0 <-> es_link, forever. Sends nothing before the
 * host's Hello; an open stream runs its due steps between received chunks (es_link_poll),
 * sleeping on WFI with CMSDK TIMER0 as the wake-up. Cycles: SysTick under QEMU -icount shift=0. */
#include "mps2.h"
#include "es_cm_serve.h"

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
    p.build_id_len = es_cm_build_id(&p.build_id);
    es_systick_init();
    es_link_init(&g_link, &p);
    es_uart_init();
    es_timer_init();
    es_cm_serve_forever(&g_link, NULL);
}
