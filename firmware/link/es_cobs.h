/*
 * COBS (Consistent Overhead Byte Stuffing), bounded: nothing is ever written past the
 * caller's buffer. The encoded form has no 0x00 byte, so 0x00 can delimit frames.
 * Encoded size <= n + n / 254 + 1.
 */
#ifndef ES_COBS_H
#define ES_COBS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Worst-case encoded size of n bytes. */
#define ES_COBS_MAX_ENCODED(n) ((n) + (n) / 254u + 1u)

/* Encode in[0..n) into out (capacity cap). Returns the encoded length, or 0 if cap is short. */
size_t es_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap);

/* Decode in[0..n) (no delimiter) into out (capacity cap). Returns the decoded length, or -1 if
 * the input is malformed (a 0x00 byte, a block running past the end) or out is too small. */
long es_cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap);

/* Incremental decoder: feed encoded bytes one at a time (no 0x00), collect the decoded bytes. */
typedef struct {
    uint8_t *out;     /* destination */
    size_t cap;       /* its capacity */
    size_t len;       /* decoded bytes so far */
    uint8_t left;     /* data bytes left in the current block */
    uint8_t code;     /* code of the current block (0: expecting a code byte) */
    uint8_t overflow; /* 1: more decoded bytes than cap (the frame will be discarded) */
} es_cobs_dec_t;

void es_cobs_dec_init(es_cobs_dec_t *d, uint8_t *out, size_t cap);
/* Feed one non-zero byte. */
void es_cobs_dec_byte(es_cobs_dec_t *d, uint8_t b);
/* At the 0x00 delimiter: returns 0 if the frame ended at a block boundary (well formed). */
int es_cobs_dec_finish(const es_cobs_dec_t *d);

#ifdef __cplusplus
}
#endif
#endif /* ES_COBS_H */
