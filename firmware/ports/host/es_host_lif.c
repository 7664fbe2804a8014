/*
 * Host only: the neuron update of the batched exact simulator (see es_host_lif.h).
 *
 * Per neuron and step, exactly docs/SEMANTICS.md:
 *   a_in = shift(ff, w_exp) + shift(sum of rec rows of last step's spikes, rec_exp)
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

/* trunc0(x * f / 4096), f = 4096 - d in 0..4096, for |x| < 2^24 (every u, v and th is): in
 * 32 bits, so that the compiler vectorises it. With |x| = hi * 4096 + lo,
 * floor(|x| * f / 4096) = hi * f + floor(lo * f / 4096), both terms below 2^24; the sign
 * goes back on after (rounding toward zero). */
static inline int32_t decay(int32_t x, int32_t f)
{
    const int32_t ax = x < 0 ? -x : x;
    const int32_t r = (ax >> 12) * f + (((ax & 4095) * f) >> 12);
    return x < 0 ? -r : r;
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

/* acc = the sum of the rows of w (fan_in x size) whose input is on in this step's 0/1 row
 * (in: 0/1 bytes); adds the events and their SynOps to *events / *synops. Either the rows of
 * the events are added (cheap when few inputs are on or the layer is wide), or, when that
 * would cost more, each neuron's sum is a dot product of the whole row with its column (w
 * transposed: wt8 when every weight fits int8, else wt16; a vectorised multiply-add of every
 * input, VNNI's where the host has it). Both are exact: every partial sum lies within the
 * validator's bound, below 2^31 (docs/SEMANTICS.md, "Bounds"). */
static void input_sums(const uint8_t *restrict in, uint32_t fan_in, const int32_t *restrict w,
                       const int8_t *restrict wt8, const int16_t *restrict wt16,
                       const uint32_t *restrict nnz, uint32_t size, uint32_t *restrict idx,
                       int32_t *restrict acc, int64_t *events, int64_t *synops)
{
    uint32_t m = 0;
    for (uint32_t j = 0; j < fan_in; ++j) {
        m += in[j];
    }
    *events += m;
    /* estimated cycles: per event a row of size adds (16 lanes) plus overhead; per neuron a
     * dot product over every input (64 or 32 lanes) plus its reduction */
    const uint64_t by_rows = (uint64_t)m * (size / 16u + 6u) + fan_in;
    const uint64_t by_dots = (uint64_t)size * (fan_in / (wt8 != NULL ? 64u : 32u) + 10u);
    if (by_rows <= by_dots) {
        uint32_t k_on = 0;
        for (uint32_t j = 0; j < fan_in; ++j) { /* the indices of the events, no branches */
            idx[k_on] = j;
            k_on += in[j] != 0u;
        }
        int64_t ops = 0;
        memset(acc, 0, sizeof(int32_t) * size);
        for (uint32_t i = 0; i < k_on; ++i) {
            const int32_t *restrict row = w + (size_t)idx[i] * size;
            ops += nnz[idx[i]];
            for (uint32_t k = 0; k < size; ++k) {
                acc[k] += row[k];
            }
        }
        *synops += ops;
        return;
    }
    if ((uint64_t)fan_in * size < ((uint64_t)1 << 32)) { /* the row's SynOps fit 32 bits */
        uint32_t ops = 0;
        for (uint32_t j = 0; j < fan_in; ++j) {
            ops += (uint32_t)in[j] * nnz[j];
        }
        *synops += ops;
    } else {
        int64_t ops = 0;
        for (uint32_t j = 0; j < fan_in; ++j) {
            ops += (int64_t)in[j] * nnz[j];
        }
        *synops += ops;
    }
    for (uint32_t k = 0; k < size; ++k) {
        int32_t sum = 0;
        if (wt8 != NULL) {
            const int8_t *restrict col = wt8 + (size_t)k * fan_in;
            for (uint32_t j = 0; j < fan_in; ++j) {
                sum += (int32_t)in[j] * (int32_t)col[j];
            }
        } else {
            const int16_t *restrict col = wt16 + (size_t)k * fan_in;
            for (uint32_t j = 0; j < fan_in; ++j) {
                sum += (int32_t)in[j] * (int32_t)col[j];
            }
        }
        acc[k] = sum;
    }
}

/* One step of the common case (no refractory period, no adaptive threshold), branch-free.
 * u_direct: du = 4096 (no current state: the decay of u is 0). */
static inline void step_plain(const es_host_layer_t *p, const int32_t *restrict ff,
                              const int32_t *restrict acc, int32_t *restrict u,
                              int32_t *restrict v, uint8_t *restrict out, const bool has_rec,
                              const bool u_direct, const bool subtract)
{
    const uint32_t size = p->size;
    const es_shift_t fs = shift_of(p->w_exp), rs = shift_of(p->rec_exp);
    const int32_t fu = (int32_t)(4096u - p->du), fv = (int32_t)(4096u - p->dv);
    const int32_t *restrict vth6 = p->vth6;
    const int32_t *restrict bias = p->bias;
    for (uint32_t k = 0; k < size; ++k) {
        int32_t a = (ff[k] >> fs.rsh) * fs.mul;
        if (has_rec) {
            a += (acc[k] >> rs.rsh) * rs.mul;
        }
        const int32_t uk = wrap24((u_direct ? 0 : decay(u[k], fu)) + a * 64);
        const int32_t vk = clip24(decay(v[k], fv) + uk + bias[k]);
        const int32_t theta = vth6[k];
        const int32_t spike = vk > theta;
        const int32_t after = subtract ? vk - theta : 0;
        u[k] = uk;
        v[k] = spike ? after : vk;
        out[k] = (uint8_t)spike;
    }
}

/* The variants of step_plain, each compiled as its own loop. */
#define ES_STEP_PLAIN(name, has_rec, u_direct, subtract)                                        \
    static void name(const es_host_layer_t *p, const int32_t *ff, const int32_t *acc,           \
                     int32_t *u, int32_t *v, uint8_t *out)                                       \
    {                                                                                            \
        step_plain(p, ff, acc, u, v, out, has_rec, u_direct, subtract);                          \
    }
ES_STEP_PLAIN(plain_ff_direct_zero, false, true, false)
ES_STEP_PLAIN(plain_ff_direct_sub, false, true, true)
ES_STEP_PLAIN(plain_ff_zero, false, false, false)
ES_STEP_PLAIN(plain_ff_sub, false, false, true)
ES_STEP_PLAIN(plain_rec_direct_zero, true, true, false)
ES_STEP_PLAIN(plain_rec_direct_sub, true, true, true)
ES_STEP_PLAIN(plain_rec_zero, true, false, false)
ES_STEP_PLAIN(plain_rec_sub, true, false, true)

typedef void (*es_step_fn)(const es_host_layer_t *, const int32_t *, const int32_t *, int32_t *,
                           int32_t *, uint8_t *);

static es_step_fn plain_variant(const es_host_layer_t *p)
{
    static const es_step_fn table[8] = {
        plain_ff_zero, plain_ff_sub, plain_ff_direct_zero, plain_ff_direct_sub,
        plain_rec_zero, plain_rec_sub, plain_rec_direct_zero, plain_rec_direct_sub,
    };
    const uint32_t idx = (p->rec != NULL ? 4u : 0u) + (p->du == 4096u ? 2u : 0u) +
                         (p->reset_subtract ? 1u : 0u);
    return table[idx];
}

/* One step with every option: refractory counters and the adaptive threshold. */
static void step_general(const es_host_layer_t *p, const int32_t *ff, const int32_t *acc,
                         int32_t *u, int32_t *v, int32_t *th, uint8_t *ref, uint8_t *out)
{
    const uint32_t size = p->size;
    const es_shift_t fs = shift_of(p->w_exp), rs = shift_of(p->rec_exp);
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
    if (p == NULL || p->vth6 == NULL || p->bias == NULL || p->spikes == NULL ||
        p->u == NULL || p->v == NULL || p->th == NULL ||
        (p->rec != NULL && (p->acc_rec == NULL || p->rec_nnz == NULL || p->idx == NULL ||
                            (p->rec_t8 == NULL && p->rec_t16 == NULL))) ||
        (p->refractory != 0u && p->ref == NULL) || p->in_kind > ES_HOST_IN_SPIKES ||
        (p->in_kind == ES_HOST_IN_SPIKES &&
         (p->in_spikes == NULL || p->w == NULL || (p->wt8 == NULL && p->wt16 == NULL) ||
          p->w_nnz == NULL || p->acc == NULL || p->idx == NULL)) ||
        (p->in_kind != ES_HOST_IN_SPIKES && p->in_sums == NULL)) {
        return 1;
    }
    const uint32_t size = p->size, steps = p->steps;
    const bool plain = p->refractory == 0u && p->adapt_step6 == 0;
    const es_step_fn step_fn = plain_variant(p);
    for (uint32_t b = 0; b < p->n; ++b) {
        int32_t *u = p->u + (size_t)b * size;
        int32_t *v = p->v + (size_t)b * size;
        int32_t *th = p->th + (size_t)b * size;
        int64_t *vsum = p->vsum != NULL ? p->vsum + (size_t)b * size : NULL;
        int32_t *counts = p->counts != NULL ? p->counts + (size_t)b * size : NULL;
        uint8_t *raster = p->spikes + (size_t)b * steps * size;
        int64_t ev = 0, ops = 0;
        memset(u, 0, sizeof(int32_t) * size);
        memset(v, 0, sizeof(int32_t) * size);
        memset(th, 0, sizeof(int32_t) * size);
        if (vsum != NULL) {
            memset(vsum, 0, sizeof(int64_t) * size);
        }
        if (counts != NULL) {
            memset(counts, 0, sizeof(int32_t) * size);
        }
        if (p->ref != NULL) {
            memset(p->ref, 0, size);
        }
        for (uint32_t t = 0; t < steps; ++t) {
            const int32_t *ff;
            if (p->in_kind == ES_HOST_IN_SPIKES) {
                const uint8_t *in = p->in_spikes + ((size_t)b * steps + t) * p->fan_in;
                input_sums(in, p->fan_in, p->w, p->wt8, p->wt16, p->w_nnz, size, p->idx,
                           p->acc, &ev, &ops);
                ff = p->acc;
            } else if (p->in_kind == ES_HOST_IN_STATIC) {
                ff = p->in_sums + (size_t)b * size;
            } else {
                ff = p->in_sums + ((size_t)b * steps + t) * size;
            }
            const int32_t *acc_rec = NULL;
            if (p->rec != NULL) {
                if (t > 0u) {
                    input_sums(raster + (size_t)(t - 1u) * size, size, p->rec, p->rec_t8,
                               p->rec_t16, p->rec_nnz, size, p->idx, p->acc_rec, &ev, &ops);
                } else {
                    memset(p->acc_rec, 0, sizeof(int32_t) * size);
                }
                acc_rec = p->acc_rec;
            }
            uint8_t *out = raster + (size_t)t * size;
            if (plain) {
                step_fn(p, ff, acc_rec, u, v, out);
            } else {
                step_general(p, ff, acc_rec, u, v, th, p->refractory != 0u ? p->ref : NULL, out);
            }
            if (vsum != NULL) {
                for (uint32_t k = 0; k < size; ++k) {
                    vsum[k] += v[k];
                }
            }
            if (counts != NULL) {
                for (uint32_t k = 0; k < size; ++k) {
                    counts[k] += out[k];
                }
            }
        }
        if (p->events != NULL) {
            p->events[b] += ev;
        }
        if (p->synops != NULL) {
            p->synops[b] += ops;
        }
    }
    return 0;
}

int32_t es_host_static_input(const uint8_t *x, uint32_t n, uint32_t steps, uint64_t row_bytes)
{
    for (uint32_t b = 0; b < n; ++b) {
        const uint8_t *first = x + (size_t)b * steps * row_bytes;
        for (uint32_t t = 1; t < steps; ++t) {
            if (memcmp(first + (size_t)t * row_bytes, first, (size_t)row_bytes) != 0) {
                return 0;
            }
        }
    }
    return 1;
}

/* The smallest and largest value of rows of one integer type, vectorised. */
#define ES_RANGE_OF(T)                                                                          \
    static void range_##T(const T *x, uint64_t rows, uint64_t row_elems, uint64_t stride,       \
                          int64_t *lo, int64_t *hi)                                              \
    {                                                                                            \
        T mn = x[0], mx = x[0];                                                                  \
        for (uint64_t r = 0; r < rows; ++r) {                                                    \
            const T *restrict row = x + r * stride;                                              \
            for (uint64_t i = 0; i < row_elems; ++i) {                                           \
                mn = row[i] < mn ? row[i] : mn;                                                  \
                mx = row[i] > mx ? row[i] : mx;                                                  \
            }                                                                                    \
        }                                                                                        \
        *lo = (int64_t)mn;                                                                       \
        *hi = (int64_t)mx;                                                                       \
    }
ES_RANGE_OF(int8_t)
ES_RANGE_OF(uint8_t)
ES_RANGE_OF(int16_t)
ES_RANGE_OF(uint16_t)
ES_RANGE_OF(int32_t)
ES_RANGE_OF(uint32_t)
ES_RANGE_OF(int64_t)

int32_t es_host_value_range(const void *x, uint32_t kind, uint64_t rows, uint64_t row_elems,
                            uint64_t stride, int64_t *lo, int64_t *hi)
{
    if (x == NULL || lo == NULL || hi == NULL || rows == 0u || row_elems == 0u) {
        return 1;
    }
    switch (kind) {
    case ES_HOST_INT8: range_int8_t((const int8_t *)x, rows, row_elems, stride, lo, hi); break;
    case ES_HOST_UINT8: range_uint8_t((const uint8_t *)x, rows, row_elems, stride, lo, hi); break;
    case ES_HOST_INT16: range_int16_t((const int16_t *)x, rows, row_elems, stride, lo, hi); break;
    case ES_HOST_UINT16:
        range_uint16_t((const uint16_t *)x, rows, row_elems, stride, lo, hi);
        break;
    case ES_HOST_INT32: range_int32_t((const int32_t *)x, rows, row_elems, stride, lo, hi); break;
    case ES_HOST_UINT32:
        range_uint32_t((const uint32_t *)x, rows, row_elems, stride, lo, hi);
        break;
    case ES_HOST_INT64: range_int64_t((const int64_t *)x, rows, row_elems, stride, lo, hi); break;
    default: return 1;
    }
    return 0;
}

uint32_t es_host_lif_version(void)
{
    return ES_HOST_LIF_VERSION;
}
