/* Clock tree for STM32F405/F407/F446: HSI -> PLL -> 168 MHz, flash wait states, bus
 * prescalers and the peripheral clocks + pins this port uses. All board constants are in
 * stm32f4.h. Every wait on a ready flag is bounded: if the PLL does not lock, the core stays on
 * HSI (16 MHz) and the result says so, instead of hanging before the UART is up.
 *
 * QEMU's netduinoplus2 implements no RCC (it reads 0, writes are ignored) and runs its clocks at
 * fixed rates whatever is written: that shows as RCC_CR == 0, impossible on silicon where the
 * core is running from HSI (HSION and HSIRDY set) when this code starts. */
#include "stm32f4.h"

#define WAIT_LOOPS 200000u /* > 1 ms at 16 MHz; HSI/PLL are ready in well under 1 ms */

static int wait_set(volatile uint32_t *reg, uint32_t mask, uint32_t want)
{
    uint32_t i;
    for (i = 0; i < WAIT_LOOPS; i++) {
        if ((*reg & mask) == want) {
            return 1;
        }
    }
    return 0;
}

static void enable_pins(void)
{
    /* GPIOA pins in alternate function 7 (USART1/2), the RX pin with a pull-up. */
#if ES_STM32_USART == 1
    const uint32_t tx = 9u, rx = 10u;
#else
    const uint32_t tx = 2u, rx = 3u;
#endif
    GPIOA_MODER = (GPIOA_MODER & ~((3u << (2u * tx)) | (3u << (2u * rx)))) |
                  (2u << (2u * tx)) | (2u << (2u * rx));
    GPIOA_OSPEEDR |= (2u << (2u * tx));
    GPIOA_PUPDR = (GPIOA_PUPDR & ~(3u << (2u * rx))) | (1u << (2u * rx));
#if ES_STM32_USART == 1
    GPIOA_AFRH = (GPIOA_AFRH & ~((0xFu << 4u * (tx - 8u)) | (0xFu << 4u * (rx - 8u)))) |
                 (7u << 4u * (tx - 8u)) | (7u << 4u * (rx - 8u));
#else
    GPIOA_AFRL = (GPIOA_AFRL & ~((0xFu << 4u * tx) | (0xFu << 4u * rx))) |
                 (7u << 4u * tx) | (7u << 4u * rx);
#endif
}

void es_stm32_clock_init(es_stm32_clocks_t *c)
{
    uint32_t cfg;
    c->emulated = (RCC_CR == 0u);
    c->pll_locked = 0;

    /* Peripheral clocks first (GPIOA; USART1 on APB2 or USART2 on APB1; TIM2; PWR). */
    RCC_AHB1ENR |= 1u << 0;                     /* GPIOAEN */
    RCC_APB1ENR |= (1u << 0) | (1u << 28);      /* TIM2EN, PWREN */
#if ES_STM32_USART == 1
    RCC_APB2ENR |= 1u << 4;                     /* USART1EN */
#else
    RCC_APB1ENR |= 1u << 17;                    /* USART2EN */
#endif
    (void)RCC_APB1ENR;                          /* let the enables settle (RM: 2 cycles) */
    enable_pins();

    if (c->emulated) {
        c->sysclk_hz = ES_STM32_SYSCLK_HZ; /* QEMU's fixed CPU/SysTick clock */
        c->usart_hz = ES_STM32_USART == 1 ? ES_STM32_PCLK2_HZ : ES_STM32_PCLK1_HZ;
        c->tim_hz = ES_QEMU_TIM_HZ;
        return;
    }

    /* Fallback values: still on HSI, all buses /1. */
    c->sysclk_hz = ES_STM32_HSI_HZ;
    c->usart_hz = ES_STM32_HSI_HZ;
    c->tim_hz = ES_STM32_HSI_HZ;

    PWR_CR |= 1u << 14; /* VOS: scale 1 (F405/F407: the bit; F446: bits 15:14 reset to 11) */
    RCC_CR |= RCC_CR_HSION;
    if (!wait_set(&RCC_CR, RCC_CR_HSIRDY, RCC_CR_HSIRDY)) {
        return;
    }
    /* Wait states before the clock goes up: prefetch, I- and D-cache, LATENCY. */
    FLASH_ACR = (1u << 8) | (1u << 9) | (1u << 10) | ES_STM32_FLASH_LATENCY;
    if ((FLASH_ACR & 0xFu) != ES_STM32_FLASH_LATENCY) {
        return;
    }
    /* AHB /1, APB1 /4 (PPRE1 = 101), APB2 /2 (PPRE2 = 100); still on HSI (SW = 00). */
    RCC_CFGR = (5u << 10) | (4u << 13);
    c->usart_hz = ES_STM32_USART == 1 ? ES_STM32_HSI_HZ / 2u : ES_STM32_HSI_HZ / 4u;
    c->tim_hz = 2u * (ES_STM32_HSI_HZ / 4u);

    RCC_CR &= ~RCC_CR_PLLON;
    (void)wait_set(&RCC_CR, RCC_CR_PLLRDY, 0u);
    /* PLLSRC = HSI (bit 22 = 0); keep bits 31:28 (PLLR on F446, reserved elsewhere). */
    cfg = RCC_PLLCFGR & 0xF0000000u;
    cfg |= ES_STM32_PLL_M | (ES_STM32_PLL_N << 6) | (((ES_STM32_PLL_P / 2u) - 1u) << 16) |
           (ES_STM32_PLL_Q << 24);
    RCC_PLLCFGR = cfg;
    RCC_CR |= RCC_CR_PLLON;
    if (!wait_set(&RCC_CR, RCC_CR_PLLRDY, RCC_CR_PLLRDY)) {
        return;
    }
    RCC_CFGR = (RCC_CFGR & ~3u) | 2u; /* SW = PLL */
    if (!wait_set(&RCC_CFGR, 0xCu, 0x8u)) { /* SWS = PLL */
        RCC_CFGR &= ~3u;
        return;
    }
    c->pll_locked = 1;
    c->sysclk_hz = ES_STM32_SYSCLK_HZ;
    c->usart_hz = ES_STM32_USART == 1 ? ES_STM32_PCLK2_HZ : ES_STM32_PCLK1_HZ;
    c->tim_hz = ES_STM32_TIM_APB1_HZ;
}
