/*
 * EdgeSpike core: the LIF update, one step for a range of neurons (docs/SEMANTICS.md):
 *
 *   u = wrap24(trunc0(u * (4096 - du)) + (a_in << 6))
 *   if ref > 0: ref -= 1, no spike, v held
 *   else: v = clip24(trunc0(v * (4096 - dv)) + u + bias); theta = (vth << 6) + th;
 *         spike = v > theta; on spike v = 0 or v - theta, ref = refractory
 *   th = trunc0(th * (4096 - adapt_decay)) + (spike ? adapt_step << 6 : 0)   (adaptive only)
 */
#include "es_lif.h"

uint32_t es_lif_update(const es_neurons_t *n, int32_t *u, int32_t *v, int32_t *th, uint8_t *ref,
                       uint32_t k0, uint32_t k1, const int32_t *a_in, uint16_t *spk_out)
{
    const uint32_t du = n->du, dv = n->dv;
    const int32_t vth6 = (int32_t)(n->vth << 6);
    const int32_t bias = (int32_t)n->bias_mant * ((int32_t)1 << n->bias_exp);
    const int32_t step6 = (int32_t)(n->adapt_step << 6);
    const bool subtract = n->reset == ES_RESET_SUBTRACT;
    uint32_t n_spk = 0;

    if (ref == NULL && th == NULL && n->vth_pn == NULL && n->bias_pn == NULL) {
        /* the common case (no refractory period, no adaptation, per-layer threshold and
         * bias): the same rules with every per-neuron test hoisted out of the loop */
        for (uint32_t k = k0; k < k1; ++k) {
            const int32_t uk = es_wrap24(es_decay(u[k], du) + a_in[k - k0] * 64);
            int32_t vk = es_clip24(es_decay(v[k], dv) + uk + bias);
            u[k] = uk;
            if (vk > vth6) {
                vk = subtract ? vk - vth6 : 0;
                spk_out[n_spk++] = (uint16_t)k;
            }
            v[k] = vk;
        }
        return n_spk;
    }

    for (uint32_t k = k0; k < k1; ++k) {
        /* a_in << 6 as a product: a_in may be negative (|a_in| < 2^25, see es_kernel.h) */
        const int32_t uk = es_wrap24(es_decay(u[k], du) + a_in[k - k0] * 64);
        u[k] = uk;
        bool spike = false;
        if (ref != NULL && ref[k] != 0u) {
            ref[k]--;
        } else {
            const int32_t b = n->bias_pn ? (int32_t)es_le16s(n->bias_pn + 2u * k) * ((int32_t)1 << n->bias_exp)
                                         : bias;
            int32_t vk = es_clip24(es_decay(v[k], dv) + uk + b);
            int32_t theta = n->vth_pn ? (int32_t)(es_le32(n->vth_pn + 4u * k) << 6) : vth6;
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
