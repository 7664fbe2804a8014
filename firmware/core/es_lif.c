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

/* F = f << 20 as int32 and whether f = 4096 - d >= 2048 (then decay_add's m is -1). */
static void decay_consts(uint32_t d, int32_t *F, bool *hi)
{
    const uint32_t f = 4096u - d;
    *F = (int32_t)(f << 20); /* f = 4096 gives 0: the identity comes from m */
    *hi = f >= 2048u;
}

#if defined(__GNUC__)
#define ES_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define ES_UNLIKELY(x) (x)
#endif

/* How u is updated: u = a_in << 6 (du = 4096, |a_in| < 2^17), u = wrap24(a_in << 6) (du =
 * 4096), or the full decay and wrap. With du = 4096 u carries nothing from one step to the
 * next, so these loops do not store it (es_lif_run writes it when asked: keep_u). */
typedef enum { ES_U_DIRECT, ES_U_WRAP, ES_U_DECAY } es_u_mode_t;

ES_INLINE int32_t wrap24_a6(int32_t a6)
{
    return ((int32_t)((uint32_t)(a6 - 1) << 8) >> 8) + 1;
}

/* Neurons [k0, k1): u, v, in6, vth_pn point at neuron k0; v_base is the layer's v (neuron 0).
 * Walking pointers with few live constants, and the spike path out of line, lets GCC keep
 * the loop in registers on the M4. */
ES_INLINE uint32_t lif_fast(const es_fast_consts_t *c, int32_t *u, int32_t *v, const int32_t *in6,
                            const uint8_t *vth_pn, const int32_t *v_base, uint32_t n,
                            uint16_t *spk, bool *quiet, const bool has_in, const es_u_mode_t um,
                            const bool pn, const bool v_hi)
{
    uint16_t *const spk0 = spk;
    int32_t *const v_end = v + n;
    const int32_t F_v = c->F_v, bias_m1 = c->bias_m1, theta_l = c->theta;
    uint32_t any = 0;
    while (v != v_end) {
        const int32_t a6 = has_in ? *in6++ : 0;
        int32_t uk = a6;
        if (um == ES_U_WRAP) {
            uk = wrap24_a6(a6);
        } else if (um == ES_U_DECAY) {
            const int32_t y = decay_add(*u, a6 - 1, c->F_u, c->u_hi ? -1 : 0);
            uk = ((int32_t)((uint32_t)y << 8) >> 8) + 1;
            *u++ = uk;
        }
        const int32_t r = ssat24(decay_add(*v, uk + bias_m1, F_v, v_hi ? -1 : 0));
        int32_t theta = theta_l;
        if (pn) {
            theta = (int32_t)(es_ld32(vth_pn) << 6);
            vth_pn += 4;
        }
        if (ES_UNLIKELY(r >= theta)) {
            *v++ = 0;
            *spk++ = (uint16_t)(v - v_base - 1);
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
#define ES_LIF_VARIANT(name, has_in, um, pn, v_hi)                                              \
    static ES_NOINLINE uint32_t name(const es_fast_consts_t *c, int32_t *u, int32_t *v,          \
                                     const int32_t *in6, const uint8_t *vth_pn,                  \
                                     const int32_t *v_base, uint32_t n, uint16_t *spk,           \
                                     bool *quiet)                                                \
    {                                                                                            \
        return lif_fast(c, u, v, in6, vth_pn, v_base, n, spk, quiet, has_in, um, pn, v_hi);      \
    }
/* du = 4096 and 4096 - dv >= 2048 (the usual slow leak), with input: |a_in| < 2^17 or not */
ES_LIF_VARIANT(lif_direct_vth, true, ES_U_DIRECT, false, true)
ES_LIF_VARIANT(lif_direct_vthpn, true, ES_U_DIRECT, true, true)
ES_LIF_VARIANT(lif_wrap_vth, true, ES_U_WRAP, false, true)
ES_LIF_VARIANT(lif_wrap_vthpn, true, ES_U_WRAP, true, true)

/* Every other fast case: the options as runtime values. */
static uint32_t lif_fast_any(const es_fast_consts_t *c, int32_t *u, int32_t *v, const int32_t *in6,
                             const uint8_t *vth_pn, const int32_t *v_base, uint32_t n,
                             uint16_t *spk, bool *quiet, bool v_hi)
{
    return lif_fast(c, u, v, in6, vth_pn, v_base, n, spk, quiet, in6 != NULL, ES_U_DECAY,
                    vth_pn != NULL, v_hi);
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

/* es_lif_plan_t.loop: du = 4096 with the usual slow leak has its own loops (+1 for
 * per-neuron thresholds); ES_LOOP_ANY covers the other fast shapes (+1 for v_hi). */
enum { ES_LOOP_DIRECT = 0, ES_LOOP_WRAP = 2, ES_LOOP_ANY = 4, ES_LOOP_GENERAL = 8 };

void es_lif_plan(const es_neurons_t *n, bool small_input, bool adaptive, bool refractory,
                 es_lif_plan_t *p)
{
    decay_consts(n->du, &p->F_u, &p->u_hi);
    decay_consts(n->dv, &p->F_v, &p->v_hi);
    p->bias_m1 = (int32_t)n->bias_mant * ((int32_t)1 << n->bias_exp) - 1;
    p->theta = (int32_t)(n->vth << 6);
    const bool v_hi = p->v_hi;
    if (adaptive || refractory || n->bias_pn != NULL || n->reset != ES_RESET_ZERO) {
        p->loop = ES_LOOP_GENERAL;
    } else if (n->du == 4096u && v_hi) {
        p->loop = (uint8_t)((small_input ? ES_LOOP_DIRECT : ES_LOOP_WRAP) +
                            (n->vth_pn != NULL ? 1u : 0u));
    } else {
        p->loop = (uint8_t)(ES_LOOP_ANY + (v_hi ? 1u : 0u));
    }
}

/* u of du = 4096 layers, which the fast loops do not store: u = wrap24(a_in << 6). */
static void write_u(int32_t *u, const int32_t *a6, uint32_t n)
{
    for (uint32_t k = 0; k < n; ++k) {
        u[k] = a6 != NULL ? wrap24_a6(a6[k]) : 0;
    }
}

static uint32_t run_fast(const es_lif_plan_t *p, const es_neurons_t *n, const es_lif_state_t *s,
                         uint32_t k0, uint32_t k1, const int32_t *a6, uint16_t *spk_out,
                         bool *quiet);

uint32_t es_lif_run(const es_lif_plan_t *p, const es_neurons_t *n, const es_lif_state_t *s,
                    uint32_t k0, uint32_t k1, const int32_t *a6, uint16_t *spk_out, bool *quiet,
                    bool keep_u)
{
    const uint32_t ns = run_fast(p, n, s, k0, k1, a6, spk_out, quiet);
    if (keep_u && p->loop < ES_LOOP_ANY) {
        write_u(s->u + k0, a6, k1 - k0);
    }
    return ns;
}

static uint32_t run_fast(const es_lif_plan_t *p, const es_neurons_t *n, const es_lif_state_t *s,
                         uint32_t k0, uint32_t k1, const int32_t *a6, uint16_t *spk_out,
                         bool *quiet)
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
    if (p->loop >= ES_LOOP_ANY || a6 == NULL) { /* a step without input is the rarer case */
        return lif_fast_any(p, u, v, a6, pn, s->v, cnt, spk_out, quiet, p->v_hi);
    }
    switch (p->loop) {
    case ES_LOOP_DIRECT: return lif_direct_vth(p, u, v, a6, pn, s->v, cnt, spk_out, quiet);
    case ES_LOOP_DIRECT + 1: return lif_direct_vthpn(p, u, v, a6, pn, s->v, cnt, spk_out, quiet);
    case ES_LOOP_WRAP: return lif_wrap_vth(p, u, v, a6, pn, s->v, cnt, spk_out, quiet);
    default: return lif_wrap_vthpn(p, u, v, a6, pn, s->v, cnt, spk_out, quiet);
    }
}

uint32_t es_lif_update(const es_neurons_t *n, const es_lif_state_t *s, uint32_t k0, uint32_t k1,
                       const int32_t *a6, bool small_input, uint16_t *spk_out, bool *quiet)
{
    es_lif_plan_t p;
    es_lif_plan(n, small_input, s->th != NULL, s->ref != NULL, &p);
    return es_lif_run(&p, n, s, k0, k1, a6, spk_out, quiet, true);
}
