/* Framing: COBS + CRC-32 + 0x00 delimiter. See es_frame.h and protocol/FRAMING.md. */
#include "es_frame.h"

#include "es_engine.h" /* es_crc32 */

void es_frame_rx_init(es_frame_rx_t *rx, uint8_t *buf, size_t cap)
{
    rx->buf = buf;
    rx->cap = cap;
    es_cobs_dec_init(&rx->dec, buf, cap);
}

static uint32_t load_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

es_rx_event_t es_frame_rx_byte(es_frame_rx_t *rx, uint8_t b, const uint8_t **payload,
                               size_t *len)
{
    es_rx_event_t ev;
    size_t n;
    if (b != 0) {
        es_cobs_dec_byte(&rx->dec, b);
        return ES_RX_NONE;
    }
    /* Delimiter: judge the frame, then start afresh whatever happened. */
    if (rx->dec.code == 0 && !rx->dec.overflow) {
        ev = ES_RX_NONE; /* empty frame */
    } else if (rx->dec.overflow) {
        ev = ES_RX_TOO_LONG;
    } else if (es_cobs_dec_finish(&rx->dec) != 0 || rx->dec.len < ES_FRAME_CRC_BYTES) {
        ev = ES_RX_BAD_FRAME;
    } else {
        n = rx->dec.len - ES_FRAME_CRC_BYTES;
        if (es_crc32(0, rx->buf, n) != load_le32(rx->buf + n)) {
            ev = ES_RX_BAD_CRC;
        } else {
            *payload = rx->buf;
            *len = n;
            ev = ES_RX_FRAME;
        }
    }
    es_cobs_dec_init(&rx->dec, rx->buf, rx->cap);
    return ev;
}

void es_frame_send(uint8_t *buf, size_t len, es_write_fn write, void *ctx)
{
    static const uint8_t delim = 0;
    uint32_t crc = es_crc32(0, buf, len);
    size_t n = len + ES_FRAME_CRC_BYTES;
    size_t i = 0;
    buf[len] = (uint8_t)crc;
    buf[len + 1] = (uint8_t)(crc >> 8);
    buf[len + 2] = (uint8_t)(crc >> 16);
    buf[len + 3] = (uint8_t)(crc >> 24);
    /* Each block: a code byte (1 + run length), then a run of up to 254 non-zero bytes. */
    for (;;) {
        size_t run = 0;
        uint8_t code;
        while (i + run < n && run < 254u && buf[i + run] != 0) {
            run++;
        }
        code = (uint8_t)(run + 1u);
        write(ctx, &code, 1);
        if (run > 0) {
            write(ctx, buf + i, run);
        }
        i += run;
        if (run == 254u) {
            /* A full block implies no zero; end with an empty block only if data is done. */
            if (i >= n) {
                code = 1;
                write(ctx, &code, 1);
                break;
            }
            continue;
        }
        if (i >= n) {
            break;
        }
        i++; /* skip the zero the block boundary stands for */
    }
    write(ctx, &delim, 1);
}
