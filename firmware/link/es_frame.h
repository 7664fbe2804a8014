/*
 * Link framing (protocol/FRAMING.md): a frame on the wire is
 *     COBS(payload || crc32_le(payload)) || 0x00
 * The receiver is an incremental state machine that decodes COBS as bytes arrive into a
 * fixed buffer and never writes past it: a frame whose decoded size would exceed the buffer
 * is discarded up to the next 0x00 and reported once as ES_RX_TOO_LONG.
 */
#ifndef ES_FRAME_H
#define ES_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "es_cobs.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ES_FRAME_CRC_BYTES 4u

typedef enum {
    ES_RX_NONE = 0,    /* nothing complete yet */
    ES_RX_FRAME,       /* a good frame: payload and length are set */
    ES_RX_BAD_CRC,     /* CRC-32 mismatch */
    ES_RX_BAD_FRAME,   /* COBS error, or shorter than a CRC */
    ES_RX_TOO_LONG     /* more bytes than the buffer before the 0x00 (discarded) */
} es_rx_event_t;

typedef struct {
    uint8_t *buf;      /* decoded payload + CRC; capacity = max payload + 4 */
    size_t cap;
    es_cobs_dec_t dec;
} es_frame_rx_t;

/* buf must hold max_payload + ES_FRAME_CRC_BYTES bytes. */
void es_frame_rx_init(es_frame_rx_t *rx, uint8_t *buf, size_t cap);

/* Feed one received byte. On ES_RX_FRAME, *payload / *len give the payload (CRC stripped),
 * valid until the next call. Empty frames (0x00 0x00) are ignored: they resynchronise. */
es_rx_event_t es_frame_rx_byte(es_frame_rx_t *rx, uint8_t b, const uint8_t **payload,
                               size_t *len);

/* Byte sink of the port. */
typedef void (*es_write_fn)(void *ctx, const uint8_t *data, size_t n);

/* Send payload[0..len) as one frame. buf[len..len+4) is overwritten with the CRC, so buf
 * must have 4 spare bytes after the payload. COBS is streamed to write block by block: no
 * second buffer. */
void es_frame_send(uint8_t *buf, size_t len, es_write_fn write, void *ctx);

#ifdef __cplusplus
}
#endif
#endif /* ES_FRAME_H */
