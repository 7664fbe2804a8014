/*
 * EdgeSpike core: the 64-bit values kernel, for direct-input layers whose sums may not fit
 * int32 (ES_LAYER_SUM32 clear: a large fan-in of large inputs at a negative weight exponent).
 * Plain C for both weight encodings; rare, so written for clarity.
 */
#include "es_kernel.h"

void es_kernel_values64(const es_weights_t *w, const int32_t *x, uint32_t k0, uint32_t n,
                        int32_t *a6)
{
    for (uint32_t k = 0; k < n; ++k) {
        int64_t acc = 0;
        for (uint32_t j = 0; j < w->fan_in; ++j) {
            if (x[j] != 0) {
                acc += (int64_t)x[j] * es_weight_at(w, j, k0 + k);
            }
        }
        a6[k] = es_shift64(acc, w->exp) * 64; /* |a_in| < 2^18 (validated) */
    }
}
