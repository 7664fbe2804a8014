/*
 * EdgeSpike core: the LIF update, one step for a range of neurons (docs/SEMANTICS.md):
 *
 *   u = wrap24(trunc0(u * (4096 - du)) + (a_in << 6))
 *   if ref > 0: ref -= 1, no spike, v held
 *   else: v = clip24(trunc0(v * (4096 - dv)) + u + bias); theta = (vth << 6) + th;
 *         spike = v > theta; on spike v = 0 or v - theta, ref = refractory
 *   th = trunc0(th * (4096 - adapt_decay)) + (spike ? adapt_step << 6 : 0)   (adaptive only)
 *
 * Two implementations with the same results. The general one follows the rules above line by
 * line. The fast one covers the common case (reset to zero, per-layer bias, no refractory
 * period, no adaptation; per-layer or per-neuron threshold) in 32-bit arithmetic:
 *   - the decay and the additions after it are one multiply-accumulate: with F = f << 20
 *     (f = 4096 - d, taken as int32) and lo = (x < 0 ? 2^32 - 1 : 0),
 *     hi:lo = (add << 32 | lo) + x * F  gives  hi = add + trunc0(x * f / 4096)
 *     (for f >= 2048, F is f * 2^20 - 2^32 as int32; adding x to `add` makes up for it);
 *   - wrap24(y) = sext24(y - 1) + 1 (the wrap keeps +2^23, as Lava's);
 *   - for reset to zero, clip24(y) and the spike test come from r = ssat24(y - 1):
 *     spike iff r >= theta, else v = r + 1 (a y above 2^23 - 1 always spikes, theta being
 *     below it, so only the lower bound needs the saturation);
 *   - du = 4096 with |a_in| < 2^17 needs no decay and no wrap of u: u = a_in << 6.
 * The input arrives as a_in << 6 (the kernels apply the weight exponent and the << 6).
 */
#if defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT
#include <arm_acle.h>
#endif

#include "es_dsp.h"
#include "es_lif.h"

/* --------------------------------------------------------------------------- fast path */

ES_INLINE int32_t ssat24(int32_t x)
{
#if defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT
    return __ssat(x, 24);
#else
    return x > ES_MAX24 - 1 ? ES_MAX24 - 1 : (x < -ES_MAX24 ? -ES_MAX24 : x);
#endif
}

/* add + trunc0(x * f / 4096), with F and m from decay_consts(f). */
ES_INLINE int32_t decay_add(int32_t x, int32_t add, int32_t F, int32_t m)
{
    const uint64_t hi = (uint64_t)(uint32_t)(add + (x & m)) << 32;
    const int64_t acc = (int64_t)(hi | (uint32_t)(x >> 31)) + (int64_t)x * F;
    return (int32_t)(acc >> 32);
}

typedef es_lif_plan_t es_fast_consts_t;

static void decay_consts(uint32_t d, int32_t *F, int32_t *m)
{
    const uint32_t f = 4096u - d;
    *F = (int32_t)(f << 20); /* f = 4096 gives 0: the identity comes from m */
    *m = f >= 2048u ? -1 : 0;
}

#if defined(__GNUC__)
#define ES_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define ES_UNLIKELY(x) (x)
#endif

/* Neurons [k0, k1): u, v, in6, vth_pn point at neuron k0; v_base is the layer's v (neuron 0).
 * Walking pointers with few live constants, and the spike path out of line, lets GCC keep
 * the loop in registers on the M4. */
ES_INLINE uint32_t lif_fast(const es_fast_consts_t *c, int32_t *u, int32_t *v, const int32_t *in6,
                            const uint8_t *vth_pn, const int32_t *v_base, uint32_t n,
                            uint16_t *spk, bool *quiet, const bool has_in, const bool u_direct,
                            const bool pn, const bool v_hi)
{
    uint16_t *const spk0 = spk;
    int32_t *const v_end = v + n;
    const int32_t F_v = c->F_v, bias_m1 = c->bias_m1, theta_l = c->theta;
    uint32_t any = 0;
    while (v != v_end) {
        const int32_t a6 = has_in ? *in6++ : 0;
        int32_t uk = a6;
        if (!u_direct) {
            const int32_t y = decay_add(*u, a6 - 1, c->F_u, c->m_u);
            uk = ((int32_t)((uint32_t)y << 8) >> 8) + 1;
        }
        *u++ = uk;
        const int32_t r = ssat24(decay_add(*v, uk + bias_m1, F_v, v_hi ? -1 : 0));
        int32_t theta = theta_l;
        if (pn) {
            theta = (int32_t)(es_ld32(vth_pn) << 6);
            vth_pn += 4;
        }
        if (ES_UNLIKELY(r >= theta)) {
            *spk++ = (uint16_t)(v - v_base);
            *v++ = 0;
            if (!has_in) {
                any |= (uint32_t)uk;
            }
        } else {
            *v++ = r + 1;
            if (!has_in) {
                any |= (uint32_t)uk | (uint32_t)(r + 1);
            }
        }
    }
    const uint32_t ns = (uint32_t)(spk - spk0);
    if (quiet != NULL) {
        *quiet = !has_in && any == 0u && ns == 0u;
    }
    return ns;
}

/* One function per specialised loop (not inlined into one big function, where GCC's register
 * allocation spills the loop's pointers). */
#if defined(__GNUC__)
#define ES_NOINLINE __attribute__((noinline))
#else
#define ES_NOINLINE
#endif
#define ES_LIF_VARIANT(name, has_in, u_direct, pn, v_hi)                                        \
    static ES_NOINLINE uint32_t name(const es_fast_consts_t *c, int32_t *u, int32_t *v,          \
                                     const int32_t *in6, const uint8_t *vth_pn,                  \
                                     const int32_t *v_base, uint32_t n, uint16_t *spk,           \
                                     bool *quiet)                                                \
    {                                                                                            \
        return lif_fast(c, u, v, in6, vth_pn, v_base, n, spk, quiet, has_in, u_direct, pn, v_hi); \
    }
/* direct: du = 4096 and |a_in| < 2^17; v_hi: 4096 - dv >= 2048 (the usual slow leak) */
ES_LIF_VARIANT(lif_in_direct_vth, true, true, false, true)
ES_LIF_VARIANT(lif_in_direct_vthpn, true, true, true, true)
ES_LIF_VARIANT(lif_quiet_direct_vth, false, true, false, true)
ES_LIF_VARIANT(lif_quiet_direct_vthpn, false, true, true, true)

/* Every other fast case: the options as runtime values. */
static uint32_t lif_fast_any(const es_fast_consts_t *c, int32_t *u, int32_t *v, const int32_t *in6,
                             const uint8_t *vth_pn, const int32_t *v_base, uint32_t n,
                             uint16_t *spk, bool *quiet, bool direct, bool v_hi)
{
    if (in6 != NULL) {
        return lif_fast(c, u, v, in6, vth_pn, v_base, n, spk, quiet, true, direct, vth_pn != NULL,
                        v_hi);
    }
    return lif_fast(c, u, v, in6, vth_pn, v_base, n, spk, quiet, false, direct, vth_pn != NULL,
                    v_hi);
}

/* --------------------------------------------------------------------------- general path */

static uint32_t update_general(const es_neurons_t *n, const es_lif_state_t *s, uint32_t k0,
                               uint32_t k1, const int32_t *a6, uint16_t *spk_out)
{
    const uint32_t du = n->du, dv = n->dv;
    const int32_t vth6 = (int32_t)(n->vth << 6);
    const int32_t bias = (int32_t)n->bias_mant * ((int32_t)1 << n->bias_exp);
    const int32_t step6 = (int32_t)(n->adapt_step << 6);
    const bool subtract = n->reset == ES_RESET_SUBTRACT;
    int32_t *u = s->u, *v = s->v, *th = s->th;
    uint8_t *ref = s->ref;
    uint32_t n_spk = 0;

    for (uint32_t k = k0; k < k1; ++k) {
        const int32_t uk = es_wrap24(es_decay(u[k], du) + (a6 != NULL ? a6[k - k0] : 0));
        u[k] = uk;
        bool spike = false;
        if (ref != NULL && ref[k] != 0u) {
            ref[k]--;
        } else {
            const int32_t b = n->bias_pn != NULL
                                  ? (int32_t)es_le16s(n->bias_pn + 2u * k) * ((int32_t)1 << n->bias_exp)
                                  : bias;
            int32_t vk = es_clip24(es_decay(v[k], dv) + uk + b);
            int32_t theta = n->vth_pn != NULL ? (int32_t)(es_le32(n->vth_pn + 4u * k) << 6) : vth6;
            if (th != NULL) {
                theta += th[k];
            }
            if (vk > theta) {
                spike = true;
                vk = subtract ? vk - theta : 0;
                if (ref != NULL) {
                    ref[k] = n->refractory;
                }
                spk_out[n_spk++] = (uint16_t)k;
            }
            v[k] = vk;
        }
        if (th != NULL) {
            th[k] = es_decay(th[k], n->adapt_decay) + (spike ? step6 : 0);
        }
    }
    return n_spk;
}

/* es_lif_plan_t.loop */
enum {
    ES_LOOP_DIRECT_VTH = 0,   /* +1: per-neuron vth; +2: no input (the loop order of run) */
    ES_LOOP_FAST_ANY = 4,     /* fast, other shapes: +1 u direct, +2 v_hi */
    ES_LOOP_GENERAL = 8
};

void es_lif_plan(const es_neurons_t *n, bool small_input, bool adaptive, bool refractory,
                 es_lif_plan_t *p)
{
    decay_consts(n->du, &p->F_u, &p->m_u);
    decay_consts(n->dv, &p->F_v, &p->m_v);
    p->bias_m1 = (int32_t)n->bias_mant * ((int32_t)1 << n->bias_exp) - 1;
    p->theta = (int32_t)(n->vth << 6);
    const bool direct = n->du == 4096u && small_input;
    const bool v_hi = p->m_v != 0;
    if (adaptive || refractory || n->bias_pn != NULL || n->reset != ES_RESET_ZERO) {
        p->loop = ES_LOOP_GENERAL;
    } else if (direct && v_hi) {
        p->loop = (uint8_t)(ES_LOOP_DIRECT_VTH + (n->vth_pn != NULL ? 1u : 0u));
    } else {
        p->loop = (uint8_t)(ES_LOOP_FAST_ANY + (direct ? 1u : 0u) + (v_hi ? 2u : 0u));
    }
}

uint32_t es_lif_run(const es_lif_plan_t *p, const es_neurons_t *n, const es_lif_state_t *s,
                    uint32_t k0, uint32_t k1, const int32_t *a6, uint16_t *spk_out, bool *quiet)
{
    if (p->loop >= ES_LOOP_GENERAL) {
        if (quiet != NULL) {
            *quiet = false;
        }
        return update_general(n, s, k0, k1, a6, spk_out);
    }
    const uint8_t *pn = n->vth_pn != NULL ? n->vth_pn + 4u * k0 : NULL;
    int32_t *u = s->u + k0, *v = s->v + k0;
    const uint32_t cnt = k1 - k0;
    switch (p->loop + (a6 == NULL && p->loop < ES_LOOP_FAST_ANY ? 2u : 0u)) {
    case 0u: return lif_in_direct_vth(p, u, v, a6, pn, s->v, cnt, spk_out, quiet);
    case 1u: return lif_in_direct_vthpn(p, u, v, a6, pn, s->v, cnt, spk_out, quiet);
    case 2u: return lif_quiet_direct_vth(p, u, v, a6, pn, s->v, cnt, spk_out, quiet);
    case 3u: return lif_quiet_direct_vthpn(p, u, v, a6, pn, s->v, cnt, spk_out, quiet);
    default:
        return lif_fast_any(p, u, v, a6, pn, s->v, cnt, spk_out, quiet, (p->loop & 1u) != 0u,
                            (p->loop & 2u) != 0u);
    }
}

uint32_t es_lif_update(const es_neurons_t *n, const es_lif_state_t *s, uint32_t k0, uint32_t k1,
                       const int32_t *a6, bool small_input, uint16_t *spk_out, bool *quiet)
{
    es_lif_plan_t p;
    es_lif_plan(n, small_input, s->th != NULL, s->ref != NULL, &p);
    return es_lif_run(&p, n, s, k0, k1, a6, spk_out, quiet);
}
