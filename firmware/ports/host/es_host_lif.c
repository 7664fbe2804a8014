/*
 * Host only: the neuron update of the batched exact simulator (see es_host_lif.h).
 *
 * Per neuron and step, exactly docs/SEMANTICS.md:
 *   a_in = shift(ff, ff_exp) + shift(sum of rec rows of last step's spikes, rec_exp)
 *   u    = wrap24(trunc0(u * (4096 - du)) + (a_in << 6))
 *   if ref > 0: ref -= 1, no spike, v held
 *   else: v = clip24(trunc0(v * (4096 - dv)) + u + bias); theta = (vth << 6) + th;
 *         spike = v > theta; on spike v = 0 or v - theta, ref = refractory
 *   th   = trunc0(th * (4096 - adapt_decay)) + (spike ? adapt_step << 6 : 0)  (adaptive only)
 * The loop without refractory period and adaptive threshold is written without branches so
 * that the compiler vectorises it across neurons; the other one follows the rules line by line.
 */
#include <stdbool.h>
#include <string.h>

#include "es_host_lif.h"

#define MAX24 ((int32_t)1 << 23)

/* trunc0(x * f / 4096), f = 4096 - d: the product in 64 bits, rounded toward zero. */
static inline int32_t decay(int32_t x, int32_t f)
{
    int64_t p = (int64_t)x * f;
    p += (p >> 63) & 4095;
    return (int32_t)(p >> 12);
}

static inline int32_t wrap24(int32_t a)
{
    a = a > MAX24 ? a - 2 * MAX24 : a;
    return a <= -MAX24 ? a + 2 * MAX24 : a;
}

static inline int32_t clip24(int32_t a)
{
    a = a > MAX24 - 1 ? MAX24 - 1 : a;
    return a < -(MAX24 - 1) ? -(MAX24 - 1) : a;
}

/* shift(s, e) as (s >> rsh) * mul: rsh = -e, mul = 1 for e < 0 (floor division by 2^-e,
 * arithmetic shift); rsh = 0, mul = 2^e otherwise (no overflow: validated models keep every
 * shifted sum below 2^17 in magnitude). */
typedef struct {
    int32_t rsh, mul;
} es_shift_t;

static es_shift_t shift_of(int32_t e)
{
    es_shift_t s = {e < 0 ? -e : 0, e >= 0 ? (int32_t)1 << e : 1};
    return s;
}

/* Sum of the recurrent rows of the neurons that spiked at the previous step. */
static void recurrent_sums(const es_host_layer_t *p, const uint8_t *prev, int32_t *acc)
{
    const uint32_t size = p->size;
    memset(acc, 0, sizeof(int32_t) * size);
    for (uint32_t j = 0; j < size; ++j) {
        if (prev[j] != 0u) {
            const int32_t *row = p->rec + (size_t)j * size;
            for (uint32_t k = 0; k < size; ++k) {
                acc[k] += row[k];
            }
        }
    }
}

/* One step of the common case (no refractory period, no adaptive threshold), branch-free. */
static inline void step_plain(const es_host_layer_t *p, const int32_t *ff, const int32_t *acc,
                              int32_t *u, int32_t *v, uint8_t *out, const bool subtract)
{
    const uint32_t size = p->size;
    const es_shift_t fs = shift_of(p->ff_exp), rs = shift_of(p->rec_exp);
    const int32_t fu = (int32_t)(4096u - p->du), fv = (int32_t)(4096u - p->dv);
    const int32_t *vth6 = p->vth6, *bias = p->bias;
    for (uint32_t k = 0; k < size; ++k) {
        int32_t a = (ff[k] >> fs.rsh) * fs.mul;
        if (acc != NULL) {
            a += (acc[k] >> rs.rsh) * rs.mul;
        }
        const int32_t uk = wrap24(decay(u[k], fu) + a * 64);
        const int32_t vk = clip24(decay(v[k], fv) + uk + bias[k]);
        const int32_t theta = vth6[k];
        const int32_t spike = vk > theta;
        const int32_t after = subtract ? vk - theta : 0;
        u[k] = uk;
        v[k] = spike ? after : vk;
        out[k] = (uint8_t)spike;
    }
}

/* One step with every option: refractory counters and the adaptive threshold. */
static void step_general(const es_host_layer_t *p, const int32_t *ff, const int32_t *acc,
                         int32_t *u, int32_t *v, int32_t *th, uint8_t *ref, uint8_t *out)
{
    const uint32_t size = p->size;
    const es_shift_t fs = shift_of(p->ff_exp), rs = shift_of(p->rec_exp);
    const int32_t fu = (int32_t)(4096u - p->du), fv = (int32_t)(4096u - p->dv);
    const int32_t fa = (int32_t)(4096u - p->adapt_decay);
    for (uint32_t k = 0; k < size; ++k) {
        int32_t a = (ff[k] >> fs.rsh) * fs.mul;
        if (acc != NULL) {
            a += (acc[k] >> rs.rsh) * rs.mul;
        }
        const int32_t uk = wrap24(decay(u[k], fu) + a * 64);
        u[k] = uk;
        int32_t spike = 0;
        if (ref != NULL && ref[k] != 0u) {
            ref[k]--;
        } else {
            int32_t vk = clip24(decay(v[k], fv) + uk + p->bias[k]);
            const int32_t theta = p->vth6[k] + th[k];
            if (vk > theta) {
                spike = 1;
                vk = p->reset_subtract ? vk - theta : 0;
                if (ref != NULL) {
                    ref[k] = (uint8_t)p->refractory;
                }
            }
            v[k] = vk;
        }
        if (p->adapt_step6 != 0) {
            th[k] = decay(th[k], fa) + (spike ? p->adapt_step6 : 0);
        }
        out[k] = (uint8_t)spike;
    }
}

int32_t es_host_lif_layer(const es_host_layer_t *p)
{
    if (p == NULL || p->ff == NULL || p->vth6 == NULL || p->bias == NULL || p->spikes == NULL ||
        p->u == NULL || p->v == NULL || p->th == NULL ||
        (p->rec != NULL && p->acc == NULL) || (p->refractory != 0u && p->ref == NULL)) {
        return 1;
    }
    const uint32_t size = p->size, steps = p->steps;
    const bool plain = p->refractory == 0u && p->adapt_step6 == 0;
    for (uint32_t b = 0; b < p->n; ++b) {
        int32_t *u = p->u + (size_t)b * size;
        int32_t *v = p->v + (size_t)b * size;
        int32_t *th = p->th + (size_t)b * size;
        int64_t *vsum = p->vsum != NULL ? p->vsum + (size_t)b * size : NULL;
        uint8_t *raster = p->spikes + (size_t)b * steps * size;
        memset(u, 0, sizeof(int32_t) * size);
        memset(v, 0, sizeof(int32_t) * size);
        memset(th, 0, sizeof(int32_t) * size);
        if (vsum != NULL) {
            memset(vsum, 0, sizeof(int64_t) * size);
        }
        if (p->ref != NULL) {
            memset(p->ref, 0, size);
        }
        for (uint32_t t = 0; t < steps; ++t) {
            const int32_t *ff = p->ff + (p->ff_static ? (size_t)b * size
                                                      : ((size_t)b * steps + t) * size);
            const int32_t *acc = NULL;
            if (p->rec != NULL && t > 0u) {
                recurrent_sums(p, raster + (size_t)(t - 1u) * size, p->acc);
                acc = p->acc;
            }
            uint8_t *out = raster + (size_t)t * size;
            if (!plain) {
                step_general(p, ff, acc, u, v, th, p->refractory != 0u ? p->ref : NULL, out);
            } else if (p->reset_subtract) {
                step_plain(p, ff, acc, u, v, out, true);
            } else {
                step_plain(p, ff, acc, u, v, out, false);
            }
            if (vsum != NULL) {
                for (uint32_t k = 0; k < size; ++k) {
                    vsum[k] += v[k];
                }
            }
        }
    }
    return 0;
}

uint32_t es_host_lif_version(void)
{
    return ES_HOST_LIF_VERSION;
}
