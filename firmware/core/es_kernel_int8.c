/*
 * EdgeSpike core: int8 weight kernels (row-major [fan_in][fan_out], one row per input).
 */
#include "es_kernel.h"

void es_kernel_int8_spikes(const es_weights_t *w, const es_rows_t *rows, uint32_t k0, uint32_t k1,
                           int32_t *acc)
{
    const uint32_t n = k1 - k0;
    const uint32_t stride = w->fan_out;
    const int8_t *base = (const int8_t *)w->data + k0;
    for (uint32_t r = 0; r < rows->n; ++r) {
        const int8_t *p = base + es_row_at(rows, r) * stride;
        const int8_t *const end4 = p + (n & ~3u);
        const int8_t *const end = p + n;
        int32_t *a = acc;
        /* unrolled by 4, pointer-walked: on the M4 (no cache, no branch predictor worth the
         * name) loop overhead is otherwise a large share of a 4-instruction body */
        while (p < end4) {
            a[0] += p[0];
            a[1] += p[1];
            a[2] += p[2];
            a[3] += p[3];
            a += 4;
            p += 4;
        }
        while (p < end) {
            *a++ += *p++;
        }
    }
}

void es_kernel_int8_values(const es_weights_t *w, const int32_t *x, uint32_t k0, uint32_t k1,
                           int64_t *acc)
{
    const uint32_t n = k1 - k0;
    const uint32_t stride = w->fan_out;
    const int8_t *row = (const int8_t *)w->data + k0;
    for (uint32_t j = 0; j < w->fan_in; ++j, row += stride) {
        const int32_t xj = x[j];
        if (xj == 0) {
            continue;
        }
        for (uint32_t k = 0; k < n; ++k) {
            acc[k] += (int64_t)xj * row[k]; /* SMLAL on the M4 */
        }
    }
}

void es_kernel_int8_row_nnz(const es_weights_t *w, uint16_t *nnz)
{
    const uint8_t *row = w->data;
    for (uint32_t j = 0; j < w->fan_in; ++j, row += w->fan_out) {
        uint32_t c = 0;
        for (uint32_t k = 0; k < w->fan_out; ++k) {
            c += row[k] != 0u;
        }
        nnz[j] = (uint16_t)c;
    }
}
