/*
 * EdgeSpike core: asymmetric ternary weight kernels (2-bit codes: 00 = 0, 01 = +a_pos,
 * 10 = -a_neg, least significant pair first; each row padded to whole bytes).
 */
#include "es_kernel.h"

/* One code's contribution to the packed counter: + in the low half, - in the high half.
 * Counts stay below 2^13 (fan_in <= 4096), so the halves never carry into each other. */
static const int32_t es_tern_count[4] = {0, 1, 0x10000, 0};

void es_kernel_ternary_spikes(const es_weights_t *w, const es_rows_t *rows, uint32_t k0,
                              uint32_t k1, int32_t *acc)
{
    const uint32_t n = k1 - k0;
    const uint32_t stride = (w->fan_out + 3u) / 4u;
    const uint32_t nbytes = (n + 3u) / 4u; /* k0 is a multiple of 4 (ES_CHUNK is) */
    const uint8_t *base = w->data + k0 / 4u;
    for (uint32_t k = 0; k < nbytes * 4u; ++k) {
        acc[k] = 0;
    }
    for (uint32_t r = 0; r < rows->n; ++r) {
        const uint8_t *row = base + es_row_at(rows, r) * stride;
        int32_t *a = acc;
        for (uint32_t q = 0; q < nbytes; ++q, a += 4) {
            const uint32_t b = row[q];
            a[0] += es_tern_count[b & 3u];
            a[1] += es_tern_count[(b >> 2) & 3u];
            a[2] += es_tern_count[(b >> 4) & 3u];
            a[3] += es_tern_count[b >> 6];
        }
    }
    /* Padding codes past fan_out landed in acc[n..]: never read. */
    if (w->a_pos_pn == NULL && w->a_neg_pn == NULL) {
        const int32_t ap = w->a_pos, an = w->a_neg;
        for (uint32_t k = 0; k < n; ++k) {
            acc[k] = (acc[k] & 0xFFFF) * ap - (acc[k] >> 16) * an;
        }
    } else {
        for (uint32_t k = 0; k < n; ++k) {
            const int32_t ap = w->a_pos_pn ? w->a_pos_pn[k0 + k] : w->a_pos;
            const int32_t an = w->a_neg_pn ? w->a_neg_pn[k0 + k] : w->a_neg;
            acc[k] = (acc[k] & 0xFFFF) * ap - (acc[k] >> 16) * an;
        }
    }
}

void es_kernel_ternary_values(const es_weights_t *w, const int32_t *x, uint32_t k0, uint32_t k1,
                              int64_t *acc)
{
    const uint32_t n = k1 - k0;
    const uint32_t stride = (w->fan_out + 3u) / 4u;
    const uint8_t *row = w->data;
    for (uint32_t j = 0; j < w->fan_in; ++j, row += stride) {
        const int32_t xj = x[j];
        if (xj == 0) {
            continue;
        }
        for (uint32_t k = 0; k < n; ++k) {
            const uint32_t kk = k0 + k;
            const uint32_t code = (row[kk >> 2] >> ((kk & 3u) * 2u)) & 3u;
            int32_t wv = 0;
            if (code == 1u) {
                wv = w->a_pos_pn ? w->a_pos_pn[kk] : w->a_pos;
            } else if (code == 2u) {
                wv = -(int32_t)(w->a_neg_pn ? w->a_neg_pn[kk] : w->a_neg);
            }
            acc[k] += (int64_t)xj * wv;
        }
    }
}

void es_kernel_ternary_row_nnz(const es_weights_t *w, uint16_t *nnz)
{
    const uint32_t stride = (w->fan_out + 3u) / 4u;
    const uint8_t *row = w->data;
    for (uint32_t j = 0; j < w->fan_in; ++j, row += stride) {
        uint32_t c = 0;
        for (uint32_t k = 0; k < w->fan_out; ++k) {
            c += ((row[k >> 2] >> ((k & 3u) * 2u)) & 3u) != 0u;
        }
        nnz[j] = (uint16_t)c;
    }
}
