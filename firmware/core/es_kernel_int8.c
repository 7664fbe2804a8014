/*
 * EdgeSpike core: int8 weight kernels (row-major [fan_in][fan_out], one row per input).
 *
 * DSP path (es_dsp.h), spikes: blocks of 16 output neurons whose sums live in eight registers
 * as packed int16 lanes; each listed row adds its 16 weights with 4 word loads and 8 SXTAB16,
 * 16 instructions per row. The rows' byte offsets are computed once per pass of up to 64 rows
 * (so no register holds the stride); lanes are widened into a6[] after each pass. A layer's
 * last block overlaps the one before it instead of taking a scalar tail, and writes only its
 * new neurons.
 * DSP path, values: blocks of 4 neurons, rows taken in pairs (x[j] | x[j+1] << 16), each
 * weight multiplied by its row's half with SMLAxy; pairs whose inputs are both zero are
 * skipped.
 */
#include "es_dsp.h"
#include "es_kernel.h"

#if ES_DSP

/* Rows per pass: their byte offsets sit on the stack (256 bytes), and int16 lanes hold the sum
 * of up to 256 rows of int8 weights exactly (|sum| <= 2^15). */
#define ES_I8_PASS_ROWS 64u

/* How a pass leaves its lanes: the only pass stores a6; of several, the first stores the raw
 * sums, the others add to them (a6 is taken once all passes are in). */
typedef enum { ES_OUT_A6, ES_OUT_STORE, ES_OUT_ADD } es_out_t;

/* Four neurons' lanes (even: k, k + 2; odd: k + 1, k + 3) into s[0..3], as `mode` says. */
ES_INLINE void out4(int32_t *s, uint32_t even, uint32_t odd, es_out_t mode, es_a6_shift_t sh)
{
    const int32_t v0 = (int16_t)even, v1 = (int16_t)odd;
    const int32_t v2 = (int32_t)even >> 16, v3 = (int32_t)odd >> 16;
    if (mode == ES_OUT_A6) {
        s[0] = es_a6(v0, sh);
        s[1] = es_a6(v1, sh);
        s[2] = es_a6(v2, sh);
        s[3] = es_a6(v3, sh);
    } else if (mode == ES_OUT_STORE) {
        s[0] = v0;
        s[1] = v1;
        s[2] = v2;
        s[3] = v3;
    } else {
        s[0] += v0;
        s[1] += v1;
        s[2] += v2;
        s[3] += v3;
    }
}

#define ES_I8_ADD(q)                                    \
    w = es_ld32(p + 4 * (q));                            \
    e##q = es_sxtab16(e##q, w);                          \
    o##q = es_sxtab16_ror8(o##q, w)

/* 16 neurons at base over the rows at byte offsets off[0 .. nr). Not inlined: alone in its
 * function, the loop gets all fourteen registers. */
static __attribute__((noinline)) void block16(const int8_t *base, const uint32_t *off,
                                              uint32_t nr, int32_t *s, es_out_t mode,
                                              es_a6_shift_t sh)
{
    uint32_t e0 = 0, o0 = 0, e1 = 0, o1 = 0, e2 = 0, o2 = 0, e3 = 0, o3 = 0;
    for (const uint32_t *po = off, *const pend = off + nr; po != pend;) {
        const int8_t *p = base + *po++;
        uint32_t w;
        ES_I8_ADD(0);
        ES_I8_ADD(1);
        ES_I8_ADD(2);
        ES_I8_ADD(3);
    }
    out4(s, e0, o0, mode, sh);
    out4(s + 4, e1, o1, mode, sh);
    out4(s + 8, e2, o2, mode, sh);
    out4(s + 12, e3, o3, mode, sh);
}

static __attribute__((noinline)) void block4(const int8_t *base, const uint32_t *off,
                                             uint32_t nr, int32_t *s, es_out_t mode,
                                             es_a6_shift_t sh)
{
    uint32_t e0 = 0, o0 = 0;
    for (const uint32_t *po = off, *const pend = off + nr; po != pend;) {
        const uint32_t w = es_ld32(base + *po++);
        e0 = es_sxtab16(e0, w);
        o0 = es_sxtab16_ror8(o0, w);
    }
    out4(s, e0, o0, mode, sh);
}

/* Rows in passes of ES_I8_PASS_ROWS; in each, blocks of `width` neurons over [0, n). The last
 * block overlaps the one before it instead of taking a scalar tail: it runs into a scratch
 * block, and only its new neurons are taken from there. */
/* 4 to 7 neurons straight from the index list (one block of 4, or two overlapping): with no
 * other block to share them, row offsets are not worth a pass of their own. */
static void spikes_narrow(const int8_t *base, uint32_t stride, const uint16_t *idx,
                          uint32_t nrows, uint32_t n, int32_t *a6, es_a6_shift_t sh)
{
    uint32_t e0 = 0, o0 = 0, e1 = 0, o1 = 0;
    if (n == 4u) {
        for (const uint16_t *pi = idx, *const pend = idx + nrows; pi != pend; ++pi) {
            const uint32_t w0 = es_ld32(base + (uint32_t)*pi * stride);
            e0 = es_sxtab16(e0, w0);
            o0 = es_sxtab16_ror8(o0, w0);
        }
        out4(a6, e0, o0, ES_OUT_A6, sh);
        return;
    }
    const int8_t *b1 = base + (n - 4u);
    for (const uint16_t *pi = idx, *const pend = idx + nrows; pi != pend; ++pi) {
        const uint32_t off = (uint32_t)*pi * stride;
        const uint32_t w0 = es_ld32(base + off), w1 = es_ld32(b1 + off);
        e0 = es_sxtab16(e0, w0);
        o0 = es_sxtab16_ror8(o0, w0);
        e1 = es_sxtab16(e1, w1);
        o1 = es_sxtab16_ror8(o1, w1);
    }
    int32_t hi[4];
    out4(a6, e0, o0, ES_OUT_STORE, sh);
    out4(hi, e1, o1, ES_OUT_STORE, sh);
    for (uint32_t k = 4; k < n; ++k) {
        a6[k] = hi[k - (n - 4u)];
    }
    es_a6_all(a6, n, sh);
}

static void spikes_dsp(const int8_t *base, uint32_t stride, const uint16_t *idx, uint32_t nrows,
                       uint32_t n, int32_t *a6, es_a6_shift_t sh)
{
    if (n < 8u && nrows <= 256u) {
        spikes_narrow(base, stride, idx, nrows, n, a6, sh);
        return;
    }
    const uint32_t width = n >= 16u ? 16u : 4u;
    uint32_t off[ES_I8_PASS_ROWS];
    int32_t tail[16];
    for (uint32_t r0 = 0; r0 < nrows; r0 += ES_I8_PASS_ROWS) {
        const uint32_t nr = nrows - r0 > ES_I8_PASS_ROWS ? ES_I8_PASS_ROWS : nrows - r0;
        for (uint32_t r = 0; r < nr; ++r) {
            off[r] = idx[r0 + r] * stride;
        }
        const es_out_t mode = nrows <= ES_I8_PASS_ROWS ? ES_OUT_A6
                                                       : (r0 == 0u ? ES_OUT_STORE : ES_OUT_ADD);
        for (uint32_t k = 0; k < n; k += width) {
            const bool whole = k + width <= n;
            const uint32_t kb = whole ? k : n - width;
            const es_out_t m = whole ? mode : (mode == ES_OUT_ADD ? ES_OUT_STORE : mode);
            int32_t *dst = whole ? a6 + k : tail;
            if (width == 16u) {
                block16(base + kb, off, nr, dst, m, sh);
            } else {
                block4(base + kb, off, nr, dst, m, sh);
            }
            for (uint32_t i = k - kb; !whole && i < width; ++i) {
                a6[kb + i] = mode == ES_OUT_ADD ? a6[kb + i] + tail[i] : tail[i];
            }
        }
    }
    if (nrows > ES_I8_PASS_ROWS) {
        es_a6_all(a6, n, sh);
    }
}
#endif /* ES_DSP */

void es_kernel_int8_spikes(const es_weights_t *w, const es_rows_t *rows, uint32_t k0, uint32_t n,
                           int32_t *a6)
{
    const uint32_t stride = w->fan_out;
    const int8_t *base = (const int8_t *)w->data + k0;
    const es_a6_shift_t sh = es_a6_shift(w->exp);
#if ES_DSP
    if (n >= 4u) {
        spikes_dsp(base, stride, rows->idx, rows->n, n, a6, sh);
        return;
    }
#endif
    const int8_t *p = base + rows->idx[0] * stride;
    for (uint32_t k = 0; k < n; ++k) {
        a6[k] = p[k];
    }
    for (uint32_t r = 1; r < rows->n; ++r) {
        p = base + rows->idx[r] * stride;
        for (uint32_t k = 0; k < n; ++k) {
            a6[k] += p[k];
        }
    }
    es_a6_all(a6, n, sh);
}

#if ES_DSP
/* A pair of input rows: x[j] | x[j + 1] << 16 and the two rows' byte offsets. */
typedef struct {
    uint32_t x2;
    uint32_t off_a, off_b;
} es_i8_pair_t;

#define ES_I8_PAIRS 64u /* pairs per pass (768 bytes of stack) */

/* Collects the pairs of rows [*j, fan_in) with a non-zero input into pairs[], at most
 * ES_I8_PAIRS; advances *j. */
static uint32_t collect_pairs(const int32_t *x, uint32_t fan_in, uint32_t stride, uint32_t *j,
                              es_i8_pair_t *pairs)
{
    uint32_t np = 0;
    for (; *j < fan_in && np < ES_I8_PAIRS; *j += 2u) {
        const uint32_t a = *j;
        const int32_t xa = x[a];
        const int32_t xb = a + 1u < fan_in ? x[a + 1u] : 0;
        if ((xa | xb) == 0) {
            continue;
        }
        pairs[np].x2 = ((uint32_t)xa & 0xFFFFu) | ((uint32_t)xb << 16);
        pairs[np].off_a = a * stride;
        pairs[np].off_b = a + 1u < fan_in ? (a + 1u) * stride : a * stride; /* x = 0 there */
        np++;
    }
    return np;
}
#endif

#if ES_DSP
/* Neurons 0 .. n of base over the pairs, their lanes left as `mode` says (see out4). Four
 * neurons at a time, in registers. */
ES_INLINE void values_pass(const int8_t *base, const es_i8_pair_t *pairs, uint32_t np,
                           uint32_t n, int32_t *s, const es_out_t mode, es_a6_shift_t sh)
{
    const es_i8_pair_t *const pend = pairs + np;
    const uint32_t n4 = n & ~3u;
    for (uint32_t k = 0; k < n4; k += 4u) {
        const int8_t *bk = base + k;
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        if (mode == ES_OUT_ADD) {
            a0 = s[k];
            a1 = s[k + 1u];
            a2 = s[k + 2u];
            a3 = s[k + 3u];
        }
        for (const es_i8_pair_t *pp = pairs; pp != pend; ++pp) {
            /* x2 = (x[j], x[j+1]); row j's weights times its low half, row j+1's its high */
            const uint32_t x2 = pp->x2;
            const uint32_t wa = es_ld32(bk + pp->off_a), wb = es_ld32(bk + pp->off_b);
            uint32_t t = es_sxtb16(wa);
            a0 = es_smlabb(x2, t, a0);
            a2 = es_smlabt(x2, t, a2);
            t = es_sxtb16_ror8(wa);
            a1 = es_smlabb(x2, t, a1);
            a3 = es_smlabt(x2, t, a3);
            t = es_sxtb16(wb);
            a0 = es_smlatb(x2, t, a0);
            a2 = es_smlatt(x2, t, a2);
            t = es_sxtb16_ror8(wb);
            a1 = es_smlatb(x2, t, a1);
            a3 = es_smlatt(x2, t, a3);
        }
        if (mode == ES_OUT_A6) {
            a0 = es_a6(a0, sh);
            a1 = es_a6(a1, sh);
            a2 = es_a6(a2, sh);
            a3 = es_a6(a3, sh);
        }
        s[k] = a0;
        s[k + 1u] = a1;
        s[k + 2u] = a2;
        s[k + 3u] = a3;
    }
    for (uint32_t k = n4; k < n; ++k) {
        int32_t acc = mode == ES_OUT_ADD ? s[k] : 0;
        for (const es_i8_pair_t *pp = pairs; pp != pend; ++pp) {
            acc += (int32_t)(int16_t)pp->x2 * base[pp->off_a + k] +
                   ((int32_t)pp->x2 >> 16) * base[pp->off_b + k];
        }
        s[k] = mode == ES_OUT_A6 ? es_a6(acc, sh) : acc;
    }
}

static void values_pass_a6(const int8_t *base, const es_i8_pair_t *pairs, uint32_t np,
                           uint32_t n, int32_t *s, es_a6_shift_t sh)
{
    values_pass(base, pairs, np, n, s, ES_OUT_A6, sh);
}

/* Several passes (more than ES_I8_PAIRS pairs): raw sums, stored by the first, added after;
 * rare enough to share one loop that tests `first` per block. */
static void values_pass_raw(const int8_t *base, const es_i8_pair_t *pairs, uint32_t np,
                            uint32_t n, int32_t *s, bool first)
{
    const es_a6_shift_t none = {0u, 0u};
    values_pass(base, pairs, np, n, s, first ? ES_OUT_STORE : ES_OUT_ADD, none);
}
#endif

void es_kernel_int8_values(const es_weights_t *w, const int32_t *x, uint32_t k0, uint32_t n,
                           int32_t *a6)
{
    const uint32_t stride = w->fan_out;
    const int8_t *base = (const int8_t *)w->data + k0;
    const es_a6_shift_t sh = es_a6_shift(w->exp);
    bool first = true;
#if ES_DSP
    es_i8_pair_t pairs[ES_I8_PAIRS];
    uint32_t j = 0;
    while (j < w->fan_in) {
        const uint32_t np = collect_pairs(x, w->fan_in, stride, &j, pairs);
        if (np == 0u) {
            continue;
        }
        if (first && j >= w->fan_in) { /* every input in one pass: a6 straight away */
            values_pass_a6(base, pairs, np, n, a6, sh);
            return;
        }
        values_pass_raw(base, pairs, np, n, a6, first);
        first = false;
    }
#else
    const int8_t *row = base;
    for (uint32_t j = 0; j < w->fan_in; ++j, row += stride) {
        const int32_t xj = x[j];
        if (xj == 0) {
            continue;
        }
        for (uint32_t k = 0; k < n; ++k) {
            a6[k] = (first ? 0 : a6[k]) + xj * row[k];
        }
        first = false;
    }
#endif
    if (first) { /* every input was zero */
        for (uint32_t k = 0; k < n; ++k) {
            a6[k] = 0;
        }
    } else {
        es_a6_all(a6, n, sh);
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
