/* COBS encode/decode, bounded. See es_cobs.h. */
#include "es_cobs.h"

size_t es_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    size_t o = 1;       /* next data position in out */
    size_t code_at = 0; /* where the current block's code goes */
    uint8_t code = 1;
    size_t i;
    if (cap == 0) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (in[i] == 0) {
            out[code_at] = code;
            code_at = o++;
            code = 1;
            if (o > cap) {
                return 0;
            }
        } else {
            if (o >= cap) {
                return 0;
            }
            out[o++] = in[i];
            code++;
            /* A full block (254 data bytes) ends without an implied zero. */
            if (code == 0xFF) {
                out[code_at] = code;
                code_at = o++;
                code = 1;
                if (o > cap) {
                    return 0;
                }
            }
        }
    }
    out[code_at] = code;
    return o;
}

long es_cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    es_cobs_dec_t d;
    size_t i;
    es_cobs_dec_init(&d, out, cap);
    for (i = 0; i < n; i++) {
        if (in[i] == 0) {
            return -1;
        }
        es_cobs_dec_byte(&d, in[i]);
    }
    if (d.overflow || es_cobs_dec_finish(&d) != 0) {
        return -1;
    }
    return (long)d.len;
}

void es_cobs_dec_init(es_cobs_dec_t *d, uint8_t *out, size_t cap)
{
    d->out = out;
    d->cap = cap;
    d->len = 0;
    d->left = 0;
    d->code = 0;
    d->overflow = 0;
}

static void put(es_cobs_dec_t *d, uint8_t b)
{
    if (d->len < d->cap) {
        d->out[d->len++] = b;
    } else {
        d->overflow = 1;
    }
}

void es_cobs_dec_byte(es_cobs_dec_t *d, uint8_t b)
{
    if (d->left == 0) {
        /* A new code byte: the previous block (if any, and not a full one) implied a zero. */
        if (d->code != 0 && d->code != 0xFF) {
            put(d, 0);
        }
        d->code = b;
        d->left = (uint8_t)(b - 1u);
    } else {
        put(d, b);
        d->left--;
    }
}

int es_cobs_dec_finish(const es_cobs_dec_t *d)
{
    /* Empty input, or a block cut short by the delimiter, is malformed. */
    if (d->code == 0 || d->left != 0) {
        return -1;
    }
    return 0;
}
