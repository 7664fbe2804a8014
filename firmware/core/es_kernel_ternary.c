/*
 * EdgeSpike core: asymmetric ternary weight kernels (2-bit codes: 00 = 0, 01 = +a_pos,
 * 10 = -a_neg, least significant pair first; each row padded to whole bytes). No lookup table:
 * a code's low bit counts +, its high bit counts -.
 *
 * DSP path, spikes: 16 neurons' codes are one 32-bit word of a row. Masking the word with
 * 0x11111111 after shifts of 0..3 puts the + and - bits of 8 neurons each into 4-bit lanes,
 * so one AND and one ADD count 8 codes (zero codes included, at no extra cost). Nibbles are
 * flushed every 15 rows into byte lanes laid out as (P_a, P_b, N_a, N_b), so that UXTB16
 * gives (P | N << 16) and one SMUSD gives P * a_pos - N * a_neg.
 * DSP path, values (when |x| * a fits int16): rows in pairs; the per-row products x * a_pos
 * and -x * a_neg are packed (row j | row j + 1 << 16), and each neuron's two code bits,
 * gathered as (bit of row j | bit of row j + 1 << 16), select them through SMLAD.
 */
#include "es_dsp.h"
#include "es_kernel.h"

ES_INLINE uint32_t tern_stride(const es_weights_t *w)
{
    return (w->fan_out + 3u) / 4u;
}

/* a_pos | a_neg << 16 of neuron k */
ES_INLINE uint32_t tern_apn(const es_weights_t *w, uint32_t k)
{
    const uint32_t ap = w->a_pos_pn != NULL ? w->a_pos_pn[k] : w->a_pos;
    const uint32_t an = w->a_neg_pn != NULL ? w->a_neg_pn[k] : w->a_neg;
    return ap | (an << 16);
}

#if ES_DSP

#define ES_T_NIBBLE_ROWS 15u  /* a 4-bit lane counts up to 15 */
#define ES_T_BYTE_ROWS 255u   /* an 8-bit lane counts up to 255 */
#define ES_T_M1 0x11111111u
#define ES_T_M4 0x0F0F0F0Fu

/* Byte accumulator i holds (P, P, N, N) of neurons (ES_T_LANE[i], + 4): see tern_count. */
static const uint8_t ES_T_LANE[8] = {0, 2, 8, 10, 1, 3, 9, 11};

/* Counts of at most 15 rows in nibble lanes: n[0] + and n[1] - of neurons 0, 2, .., 14 (lane
 * i: neuron 2i), n[2] + and n[3] - of neurons 1, 3, .., 15. */
ES_INLINE void tern_nibbles(const uint8_t *base, uint32_t stride, const uint16_t *pi,
                            const uint16_t *pend, uint32_t *n)
{
    const uint32_t m = es_reg(ES_T_M1);
    uint32_t n0 = 0, n1 = 0, n2 = 0, n3 = 0;
    while (pi != pend) {
        const uint32_t w = es_ld32(base + (uint32_t)*pi++ * stride);
        n0 += w & m;
        n1 += (w >> 1) & m;
        n2 += (w >> 2) & m;
        n3 += (w >> 3) & m;
    }
    n[0] = n0;
    n[1] = n1;
    n[2] = n2;
    n[3] = n3;
}

/* Counts of at most 15 rows: nibble lanes -> the byte accumulators b[]. */
ES_INLINE void tern_count(const uint8_t *base, uint32_t stride, const uint16_t *pi,
                          const uint16_t *pend, uint32_t *b)
{
    uint32_t n[4];
    tern_nibbles(base, stride, pi, pend, n);
    /* (P0 P2 P4 P6 | N0 N2 N4 N6) nibbles -> bytes (P0 P4 N0 N4) and (P2 P6 N2 N6) */
    uint32_t t = es_pkhbt16(n[0], n[1]);
    b[0] += t & ES_T_M4;
    b[1] += (t >> 4) & ES_T_M4;
    t = es_pkhtb16(n[0], n[1]);
    b[2] += t & ES_T_M4;
    b[3] += (t >> 4) & ES_T_M4;
    t = es_pkhbt16(n[2], n[3]);
    b[4] += t & ES_T_M4;
    b[5] += (t >> 4) & ES_T_M4;
    t = es_pkhtb16(n[2], n[3]);
    b[6] += t & ES_T_M4;
    b[7] += (t >> 4) & ES_T_M4;
}

/* At most 15 rows, neurons [k, k + lim) (lim <= 16): each neuron's (P | N << 16) straight
 * from the nibble lanes, and only the lim neurons wanted (a narrow layer pays for its own). */
static void tern_block_few(const es_weights_t *w, const uint8_t *base, uint32_t stride,
                           const uint16_t *idx, uint32_t nrows, uint32_t k, uint32_t lim,
                           int32_t *s, es_a6_shift_t sh)
{
    uint32_t n[4];
    tern_nibbles(base, stride, idx, idx + nrows, n);
    /* q[0]: even neurons 0..6, q[1]: odd 1..7, q[2]: even 8..14, q[3]: odd 9..15; neuron kk
     * in nibble (kk >> 1) & 3 of each half */
    const uint32_t q[4] = {es_pkhbt16(n[0], n[1]), es_pkhbt16(n[2], n[3]),
                           es_pkhtb16(n[0], n[1]), es_pkhtb16(n[2], n[3])};
    const bool per_neuron = w->a_pos_pn != NULL || w->a_neg_pn != NULL;
    const uint32_t apn = tern_apn(w, 0);
    for (uint32_t kk = 0; kk < lim; ++kk) {
        const uint32_t pn = (q[(kk & 1u) | ((kk >> 2) & 2u)] >> ((kk & 6u) * 2u)) & 0x000F000Fu;
        s[kk] = es_a6(es_smusd(pn, per_neuron ? tern_apn(w, k + kk) : apn), sh);
    }
}

/* Neurons [k, k + lim) (lim <= 16) of a block of 16 whose codes start at base in each row. */
static void tern_block(const es_weights_t *w, const uint8_t *base, uint32_t stride,
                       const uint16_t *idx, uint32_t nrows, uint32_t k, uint32_t lim, int32_t *s,
                       es_a6_shift_t sh)
{
    if (nrows <= ES_T_NIBBLE_ROWS && lim < 16u) {
        tern_block_few(w, base, stride, idx, nrows, k, lim, s, sh);
        return;
    }
    const bool one_pass = nrows <= ES_T_BYTE_ROWS;
    const bool per_neuron = w->a_pos_pn != NULL || w->a_neg_pn != NULL;
    const uint32_t apn = tern_apn(w, 0);
    bool first = true;
    for (uint32_t r0 = 0; r0 < nrows; r0 += ES_T_BYTE_ROWS) {
        const uint32_t r1 = nrows - r0 > ES_T_BYTE_ROWS ? r0 + ES_T_BYTE_ROWS : nrows;
        uint32_t b[8];
        for (uint32_t i = 0; i < 8u; ++i) {
            b[i] = 0; /* not `= {0}`: at -Os GCC calls newlib's (slow) memset for it */
        }
        for (uint32_t q = r0; q < r1; q += ES_T_NIBBLE_ROWS) {
            const uint32_t q1 = r1 - q > ES_T_NIBBLE_ROWS ? q + ES_T_NIBBLE_ROWS : r1;
            tern_count(base, stride, idx + q, idx + q1, b);
        }
        if (one_pass && lim == 16u && !per_neuron) {
            /* the common case, straight: byte accumulator i holds neurons ES_T_LANE[i], + 4 */
            for (uint32_t i = 0; i < 8u; ++i) {
                s[ES_T_LANE[i]] = es_a6(es_smusd(es_uxtb16(b[i]), apn), sh);
                s[ES_T_LANE[i] + 4u] = es_a6(es_smusd(es_uxtb16_ror8(b[i]), apn), sh);
            }
        } else {
            for (uint32_t i = 0; i < 16u; ++i) {
                /* (P | N << 16) of neuron kk: byte lanes 0 and 2 (or 1 and 3) of b[i & 7] */
                const uint32_t kk = ES_T_LANE[i & 7u] + (i & 8u) / 2u;
                if (kk >= lim) {
                    continue;
                }
                const uint32_t pn = i < 8u ? es_uxtb16(b[i]) : es_uxtb16_ror8(b[i & 7u]);
                const int32_t v = es_smusd(pn, per_neuron ? tern_apn(w, k + kk) : apn);
                s[kk] = one_pass ? es_a6(v, sh) : (first ? v : s[kk] + v);
            }
        }
        first = false;
    }
    if (!one_pass) {
        es_a6_all(s, lim, sh);
    }
}

/* Blocks of 16 neurons; the last overlaps the one before it (n >= 16) or, for n < 16, reads
 * past the row's codes: at most 3 bytes, into the next row or, after the last row, into the
 * blob's 6-byte content hash that always follows (es_model_parse); those lanes are dropped. */
static void spikes_dsp(const es_weights_t *w, const uint16_t *idx, uint32_t nrows, uint32_t k0,
                       uint32_t n, int32_t *sum)
{
    const es_a6_shift_t sh = es_a6_shift(w->exp);
    const uint32_t stride = tern_stride(w);
    const uint32_t n4 = (n + 3u) & ~3u; /* sum has room for whole code bytes */
    for (uint32_t k = 0;; k += 16u) {
        if (k + 16u > n4) {
            k = n4 > 16u ? n4 - 16u : 0u; /* a multiple of 4: whole code bytes */
        }
        const uint8_t *base = w->data + (k0 + k) / 4u;
        const uint32_t lim = n4 - k < 16u ? n4 - k : 16u;
        tern_block(w, base, stride, idx, nrows, k0 + k, lim, sum + k, sh);
        if (k + 16u >= n4) {
            break;
        }
    }
}
#endif /* ES_DSP */

void es_kernel_ternary_spikes(const es_weights_t *w, const es_rows_t *rows, uint32_t k0,
                              uint32_t n, int32_t *sum)
{
#if ES_DSP
    spikes_dsp(w, rows->idx, rows->n, k0, n, sum);
#else
    /* Count + in the low half and - in the high half of one word per neuron (counts stay
     * below 2^13: fan_in <= 4096), then weight them once per neuron. */
    const uint32_t stride = tern_stride(w);
    for (uint32_t k = 0; k < n; ++k) {
        sum[k] = 0;
    }
    for (uint32_t r = 0; r < rows->n; ++r) {
        const uint8_t *row = w->data + rows->idx[r] * stride;
        for (uint32_t k = 0; k < n; ++k) {
            const uint32_t kk = k0 + k;
            const uint32_t c = (uint32_t)(row[kk >> 2] >> ((kk & 3u) * 2u));
            sum[k] += (int32_t)((c & 1u) | ((c & 2u) << 15));
        }
    }
    const es_a6_shift_t sh = es_a6_shift(w->exp);
    for (uint32_t k = 0; k < n; ++k) {
        const uint32_t apn = tern_apn(w, k0 + k);
        sum[k] = es_a6((sum[k] & 0xFFFF) * (int32_t)(apn & 0xFFFFu) -
                       (sum[k] >> 16) * (int32_t)(apn >> 16), sh);
    }
#endif
}

#if ES_DSP
typedef struct {
    uint32_t xp, xn; /* x * a_pos and -x * a_neg of rows j, j + 1 as int16 lanes */
    uint32_t off_a, off_b;
} es_t_pair_t;

#define ES_T_PAIRS 48u /* pairs per pass (768 bytes of stack) */

static uint32_t collect_pairs(const es_weights_t *w, const int32_t *x, uint32_t *j,
                              es_t_pair_t *pairs)
{
    const uint32_t fan_in = w->fan_in, stride = tern_stride(w);
    const int32_t ap = w->a_pos, an = w->a_neg;
    uint32_t np = 0;
    for (; *j < fan_in && np < ES_T_PAIRS; *j += 2u) {
        const uint32_t a = *j;
        const int32_t xa = x[a];
        const int32_t xb = a + 1u < fan_in ? x[a + 1u] : 0;
        if ((xa | xb) == 0) {
            continue;
        }
        pairs[np].xp = ((uint32_t)(xa * ap) & 0xFFFFu) | ((uint32_t)(xb * ap) << 16);
        pairs[np].xn = ((uint32_t)(-xa * an) & 0xFFFFu) | ((uint32_t)(-xb * an) << 16);
        pairs[np].off_a = a * stride;
        pairs[np].off_b = a + 1u < fan_in ? (a + 1u) * stride : a * stride;
        np++;
    }
    return np;
}

/* Four neurons (one code byte per row) over the pairs. */
ES_INLINE void values_block4(const uint8_t *bq, const es_t_pair_t *pairs, uint32_t np, int32_t *s,
                             bool first, bool only, es_a6_shift_t sh)
{
    const uint32_t m = es_reg(0x00010001u);
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    if (!first) {
        a0 = s[0];
        a1 = s[1];
        a2 = s[2];
        a3 = s[3];
    }
    for (const es_t_pair_t *pp = pairs; pp != pairs + np; ++pp) {
        const uint32_t c = (uint32_t)bq[pp->off_a] | ((uint32_t)bq[pp->off_b] << 16);
        a0 = es_smlad(c & m, pp->xp, a0);
        a0 = es_smlad((c >> 1) & m, pp->xn, a0);
        a1 = es_smlad((c >> 2) & m, pp->xp, a1);
        a1 = es_smlad((c >> 3) & m, pp->xn, a1);
        a2 = es_smlad((c >> 4) & m, pp->xp, a2);
        a2 = es_smlad((c >> 5) & m, pp->xn, a2);
        a3 = es_smlad((c >> 6) & m, pp->xp, a3);
        a3 = es_smlad((c >> 7) & m, pp->xn, a3);
    }
    s[0] = only ? es_a6(a0, sh) : a0;
    s[1] = only ? es_a6(a1, sh) : a1;
    s[2] = only ? es_a6(a2, sh) : a2;
    s[3] = only ? es_a6(a3, sh) : a3;
}
#endif

void es_kernel_ternary_values(const es_weights_t *w, const int32_t *x, uint32_t k0, uint32_t n,
                              int32_t *a6)
{
    const uint32_t stride = tern_stride(w);
    const es_a6_shift_t sh = es_a6_shift(w->exp);
#if ES_DSP
    if ((w->flags & ES_W_VALUES16) != 0u) {
        es_t_pair_t pairs[ES_T_PAIRS];
        bool first = true, shifted = false;
        uint32_t j = 0;
        const uint32_t nb = (n + 3u) / 4u; /* k0 is a multiple of 4 */
        while (j < w->fan_in) {
            const uint32_t np = collect_pairs(w, x, &j, pairs);
            if (np == 0u) {
                continue;
            }
            const bool only = first && j >= w->fan_in; /* one pass: a6 straight away */
            for (uint32_t q = 0; q < nb; ++q) {
                values_block4(w->data + k0 / 4u + q, pairs, np, a6 + 4u * q, first, only, sh);
            }
            first = false;
            shifted = only;
        }
        if (first) {
            for (uint32_t k = 0; k < n; ++k) {
                a6[k] = 0;
            }
        } else if (!shifted) {
            es_a6_all(a6, n, sh);
        }
        return;
    }
#endif
    /* Sums of the inputs met on + and on - codes, weighted once per neuron. */
    int32_t sp[ES_CHUNK], sn[ES_CHUNK];
    for (uint32_t k = 0; k < n; ++k) {
        sp[k] = 0;
        sn[k] = 0;
    }
    const uint8_t *row = w->data;
    for (uint32_t j = 0; j < w->fan_in; ++j, row += stride) {
        const int32_t xj = x[j];
        if (xj == 0) {
            continue;
        }
        for (uint32_t k = 0; k < n; ++k) {
            const uint32_t kk = k0 + k;
            const uint32_t c = (uint32_t)(row[kk >> 2] >> ((kk & 3u) * 2u));
            sp[k] += (c & 1u) ? xj : 0;
            sn[k] += (c & 2u) ? xj : 0;
        }
    }
    for (uint32_t k = 0; k < n; ++k) {
        const uint32_t apn = tern_apn(w, k0 + k);
        a6[k] = es_a6(sp[k] * (int32_t)(apn & 0xFFFFu) - sn[k] * (int32_t)(apn >> 16), sh);
    }
}

void es_kernel_ternary_row_nnz(const es_weights_t *w, uint16_t *nnz)
{
    const uint32_t stride = tern_stride(w);
    const uint8_t *row = w->data;
    for (uint32_t j = 0; j < w->fan_in; ++j, row += stride) {
        uint32_t c = 0;
        for (uint32_t k = 0; k < w->fan_out; ++k) {
            c += ((row[k >> 2] >> ((k & 3u) * 2u)) & 3u) != 0u;
        }
        nnz[j] = (uint16_t)c;
    }
}
