/*
 * EdgeSpike core: parse and validate a model blob (docs/SEMANTICS.md; the SDK's
 * Model.validate in host_sdk/edgespike/model/quantized.py is the rule set mirrored here).
 *
 * Zero copy: every protobuf `bytes` field is a nanopb callback that records where its bytes
 * lie in the blob and skips them, so weights and per-neuron arrays are read in place. Layers
 * are decoded one at a time by a callback (nanopb keeps only one Layer struct on the stack).
 * Nothing is accepted before every length, code and range is checked: a hostile blob must
 * never make the engine read outside it.
 */
#include <string.h>

#include "es_internal.h"
#include "pb_decode.h"
#include "edgespike.pb.h"

#define ES_HASH_TAG0 0xC5u /* field 1000, wire type fixed32, as a varint */
#define ES_HASH_TAG1 0x3Eu
#define ES_FORMAT_VERSION 1u
#define ES_VTH_MAX 131071u
#define ES_DECAY_UNITY 4096u
#define ES_A_IN_LIMIT ((uint64_t)1 << 17)
#define ES_SUM_LIMIT ((uint64_t)1 << 31)

/* Where a bytes field lies inside the blob (blob / blob_len: the whole blob, for a check). */
typedef struct {
    const uint8_t *p;
    uint32_t len;
    const uint8_t *blob;
    uint32_t blob_len;
} es_span_t;

typedef struct {
    es_model_t *m;
    es_error_t *err;
    uint8_t count;       /* layers decoded so far */
    bool own_error;      /* err was filled by a callback: keep its text */
    const uint8_t *blob;
    uint32_t blob_len;
} es_parse_ctx_t;

/* nanopb callback for a bytes field: record pointer and length, then skip the bytes. The
 * stream is a substream of the buffer istream, so stream->state is the next unread byte.
 * nanopb also calls it for a field sent with a scalar wire type, over a copy on its stack:
 * the wire grammar below refuses those first; the range check keeps a pointer outside the
 * blob from ever being recorded. */
static bool span_cb(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    (void)field;
    es_span_t *span = (es_span_t *)*arg;
    const uintptr_t at = (uintptr_t)stream->state, lo = (uintptr_t)span->blob;
    if (at < lo || at - lo > span->blob_len || stream->bytes_left > span->blob_len - (at - lo)) {
        PB_RETURN_ERROR(stream, "bytes field outside the blob");
    }
    span->p = (const uint8_t *)stream->state;
    span->len = (uint32_t)stream->bytes_left;
    return pb_read(stream, NULL, stream->bytes_left);
}

/* ---- Wire grammar (docs/SEMANTICS.md, "Which blobs are accepted") ----------------------------
 * nanopb and the SDK's protobuf parser (upb) accept different malformed bytes: nanopb skips the
 * texts and the encoder without looking (upb refuses bad UTF-8 and a malformed encoder) and
 * reads tags and lengths padded past 5 bytes (upb refuses them); upb takes a known field with
 * the wrong wire type as an unknown one and truncates varints to 32 bits (nanopb refuses
 * both, enums included: they have no negative value, so nanopb reads them as uint32). Before
 * nanopb runs, the blob is walked by this grammar, the set both read alike;
 * host_sdk/edgespike/model/blob.py (check_wire) applies the same rules from the .proto. */
typedef enum {
    WK_VAR32,   /* uint32, sint32, enum (nanopb reads these enums as uint32): below 2^32 */
    WK_REP32,   /* repeated sint32: WK_VAR32 items, or packed */
    WK_FIXED32,
    WK_BYTES,
    WK_TEXT,    /* string: valid UTF-8 */
    WK_MSG      /* sub-message, walked by its own table */
} es_wire_kind_t;

typedef struct {
    uint16_t number;
    uint8_t kind; /* es_wire_kind_t */
    uint8_t sub;  /* WK_MSG: index in wire_msgs */
} es_wire_field_t;

enum { WM_MODEL, WM_LAYER, WM_WEIGHTS, WM_NEURONS, WM_ENCODER };

static const es_wire_field_t wf_model[] = {
    {1, WK_VAR32, 0}, {2, WK_TEXT, 0}, {3, WK_VAR32, 0}, {4, WK_VAR32, 0}, {5, WK_VAR32, 0},
    {6, WK_VAR32, 0}, {7, WK_VAR32, 0}, {8, WK_MSG, WM_LAYER}, {9, WK_VAR32, 0},
    {10, WK_MSG, WM_ENCODER}, {11, WK_TEXT, 0}, {12, WK_VAR32, 0}, {13, WK_VAR32, 0},
    {1000, WK_FIXED32, 0}};
static const es_wire_field_t wf_layer[] = {
    {1, WK_VAR32, 0}, {2, WK_VAR32, 0}, {3, WK_MSG, WM_WEIGHTS}, {4, WK_MSG, WM_WEIGHTS},
    {5, WK_MSG, WM_NEURONS}, {6, WK_TEXT, 0}};
static const es_wire_field_t wf_weights[] = {
    {1, WK_VAR32, 0}, {2, WK_VAR32, 0}, {3, WK_VAR32, 0}, {4, WK_BYTES, 0}, {5, WK_VAR32, 0},
    {6, WK_VAR32, 0}, {7, WK_VAR32, 0}, {8, WK_BYTES, 0}, {9, WK_BYTES, 0}};
static const es_wire_field_t wf_neurons[] = {
    {1, WK_VAR32, 0}, {2, WK_VAR32, 0}, {3, WK_VAR32, 0}, {4, WK_BYTES, 0}, {5, WK_VAR32, 0},
    {6, WK_BYTES, 0}, {7, WK_VAR32, 0}, {8, WK_VAR32, 0}, {9, WK_VAR32, 0}, {10, WK_VAR32, 0},
    {11, WK_VAR32, 0}};
static const es_wire_field_t wf_encoder[] = {
    {1, WK_VAR32, 0}, {2, WK_VAR32, 0}, {3, WK_REP32, 0}, {4, WK_TEXT, 0}};

static const struct {
    const es_wire_field_t *fields;
    uint8_t n;
    const char *name;
} wire_msgs[] = {
    {wf_model, sizeof(wf_model) / sizeof(wf_model[0]), "Model"},
    {wf_layer, sizeof(wf_layer) / sizeof(wf_layer[0]), "Layer"},
    {wf_weights, sizeof(wf_weights) / sizeof(wf_weights[0]), "Weights"},
    {wf_neurons, sizeof(wf_neurons) / sizeof(wf_neurons[0]), "Neurons"},
    {wf_encoder, sizeof(wf_encoder) / sizeof(wf_encoder[0]), "Encoder"},
};

typedef struct {
    const uint8_t *b;
    es_error_t *err;
    uint32_t encoder_kind; /* Encoder.kind as the parsers merge it: the last one on the wire */
} es_wire_t;

static bool wire_fail(es_wire_t *w, uint32_t at, uint8_t msg, uint32_t number, const char *what)
{
    (void)es_error_set(w->err, ES_ERR_DECODE, at, "blob byte %u, %s field %u: %s", at,
                       wire_msgs[msg].name, number, what);
    return false;
}

/* A varint of at most max bytes at *pos (before end); a 10-byte one must fit 64 bits. */
static bool wire_varint(const uint8_t *b, uint32_t *pos, uint32_t end, uint32_t max, uint64_t *v)
{
    uint64_t r = 0;
    for (uint32_t i = 0; i < max && *pos < end; ++i) {
        const uint8_t c = b[(*pos)++];
        r |= (uint64_t)(c & 0x7Fu) << (7u * i);
        if ((c & 0x80u) == 0u) {
            *v = r;
            return i < 9u || c <= 1u;
        }
    }
    return false;
}

/* A length prefix (at most 5 bytes) whose bytes fit before end. */
static bool wire_length(const uint8_t *b, uint32_t *pos, uint32_t end, uint32_t *n)
{
    uint64_t v = 0;
    if (!wire_varint(b, pos, end, 5u, &v) || v > (uint64_t)(end - *pos)) {
        return false;
    }
    *n = (uint32_t)v;
    return true;
}

/* Strict UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF), as upb. */
static bool utf8_ok(const uint8_t *s, uint32_t n)
{
    uint32_t i = 0;
    while (i < n) {
        const uint8_t c = s[i];
        uint32_t len, cp, min;
        if (c < 0x80u) {
            i++;
            continue;
        } else if (c >= 0xC2u && c <= 0xDFu) {
            len = 2u, cp = c & 0x1Fu, min = 0x80u;
        } else if ((c & 0xF0u) == 0xE0u) {
            len = 3u, cp = c & 0x0Fu, min = 0x800u;
        } else if (c >= 0xF0u && c <= 0xF4u) {
            len = 4u, cp = c & 0x07u, min = 0x10000u;
        } else {
            return false;
        }
        if (n - i < len) {
            return false;
        }
        for (uint32_t k = 1; k < len; ++k) {
            if ((s[i + k] & 0xC0u) != 0x80u) {
                return false;
            }
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        if (cp < min || cp > 0x10FFFFu || (cp >= 0xD800u && cp <= 0xDFFFu)) {
            return false;
        }
        i += len;
    }
    return true;
}

/* Walk bytes [pos, end) as message msg. Depth is bounded by the tables (Model > Layer >
 * Weights). */
static bool wire_message(es_wire_t *w, uint32_t pos, uint32_t end, uint8_t msg)
{
    const uint8_t *b = w->b;
    while (pos < end) {
        const uint32_t at = pos;
        uint64_t tag = 0, v = 0;
        uint32_t n = 0;
        if (!wire_varint(b, &pos, end, 5u, &tag) || tag > 0xFFFFFFFFu || (tag >> 3) == 0u) {
            return wire_fail(w, at, msg, 0u, "bad tag");
        }
        const uint32_t number = (uint32_t)(tag >> 3), wt = (uint32_t)(tag & 7u);
        const es_wire_field_t *f = NULL;
        for (uint8_t i = 0; i < wire_msgs[msg].n; ++i) {
            if (wire_msgs[msg].fields[i].number == number) {
                f = &wire_msgs[msg].fields[i];
            }
        }
        static const uint8_t want[] = {0u, 0u, 5u, 2u, 2u, 2u}; /* by es_wire_kind_t */
        if (f == NULL) { /* unknown (a newer format's field): skipped */
            bool ok = wt == 0u ? wire_varint(b, &pos, end, 10u, &v)
                    : wt == 1u ? end - pos >= 8u
                    : wt == 5u ? end - pos >= 4u
                    : wt == 2u ? wire_length(b, &pos, end, &n)
                    : false;
            if (!ok) {
                return wire_fail(w, at, msg, number, "unknown field does not parse");
            }
            pos += wt == 1u ? 8u : wt == 5u ? 4u : n;
            continue;
        }
        if (f->kind == WK_REP32 && wt == 2u) { /* packed */
            if (!wire_length(b, &pos, end, &n)) {
                return wire_fail(w, at, msg, number, "bad length");
            }
            const uint32_t stop = pos + n;
            while (pos < stop) {
                if (!wire_varint(b, &pos, stop, 10u, &v) || v > 0xFFFFFFFFu) {
                    return wire_fail(w, at, msg, number, "packed value above 2^32-1");
                }
            }
            continue;
        }
        if (wt != want[f->kind]) {
            return wire_fail(w, at, msg, number, "wrong wire type");
        }
        switch ((es_wire_kind_t)f->kind) {
        case WK_VAR32:
        case WK_REP32:
            if (!wire_varint(b, &pos, end, 10u, &v) || v > 0xFFFFFFFFu) {
                return wire_fail(w, at, msg, number, "varint above 2^32-1 or malformed");
            }
            if (msg == WM_ENCODER && number == 1u) {
                w->encoder_kind = (uint32_t)v;
            }
            break;
        case WK_FIXED32:
            if (end - pos < 4u) {
                return wire_fail(w, at, msg, number, "truncated");
            }
            pos += 4u;
            break;
        default: /* WK_BYTES, WK_TEXT, WK_MSG */
            if (!wire_length(b, &pos, end, &n)) {
                return wire_fail(w, at, msg, number, "bad length");
            }
            if (f->kind == WK_TEXT && !utf8_ok(b + pos, n)) {
                return wire_fail(w, at, msg, number, "text is not valid UTF-8");
            }
            if (f->kind == WK_MSG && !wire_message(w, pos, pos + n, f->sub)) {
                return false;
            }
            pos += n;
            break;
        }
    }
    return true;
}

static bool layer_fail(es_parse_ctx_t *ctx, es_status_t code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)es_error_vset(ctx->err, code, ctx->count, fmt, ap);
    va_end(ap);
    ctx->own_error = true;
    return false;
}

/* Checks one Weights message on its own and narrows it into w. */
static bool take_weights(es_parse_ctx_t *ctx, const char *what, const edgespike_Weights *pw,
                         const es_span_t *sp /* data, a_pos_pn, a_neg_pn */, es_weights_t *w)
{
    const unsigned l = ctx->count;
    memset(w, 0, sizeof(*w));
    if (pw->fan_in < 1u || pw->fan_out < 1u) {
        return layer_fail(ctx, ES_ERR_MODEL_INVALID, "layer %u%s: empty weight matrix", l, what);
    }
    if (pw->fan_in > ES_MAX_LAYER_SIZE || pw->fan_out > ES_MAX_LAYER_SIZE) {
        return layer_fail(ctx, ES_ERR_MODEL_TOO_LARGE, "layer %u%s: %ux%u weights exceed %u",
                          l, what, pw->fan_in, pw->fan_out, (uint32_t)ES_MAX_LAYER_SIZE);
    }
    if (pw->exp < -31 || pw->exp > 16) {
        return layer_fail(ctx, ES_ERR_MODEL_INVALID, "layer %u%s: weight exp %d outside -31..16",
                          l, what, pw->exp);
    }
    w->fan_in = (uint16_t)pw->fan_in;
    w->fan_out = (uint16_t)pw->fan_out;
    w->exp = (int8_t)pw->exp;
    w->data = sp[0].p;
    w->data_len = sp[0].len;
    if (pw->encoding == edgespike_WeightEncoding_WEIGHTS_INT8) {
        w->encoding = ES_W_INT8;
        uint32_t want = pw->fan_in * pw->fan_out;
        if (sp[0].len != want) {
            return layer_fail(ctx, ES_ERR_MODEL_INVALID, "layer %u%s: int8 data is %u bytes, not %u",
                              l, what, sp[0].len, want);
        }
        return true;
    }
    if (pw->encoding != edgespike_WeightEncoding_WEIGHTS_TERNARY2) {
        return layer_fail(ctx, ES_ERR_UNSUPPORTED, "layer %u%s: unknown weight encoding %d", l,
                          what, (int32_t)pw->encoding);
    }
    w->encoding = ES_W_TERNARY2;
    uint32_t stride = (pw->fan_out + 3u) / 4u;
    uint32_t want = pw->fan_in * stride;
    if (sp[0].len != want) {
        return layer_fail(ctx, ES_ERR_MODEL_INVALID, "layer %u%s: ternary data is %u bytes, not %u",
                          l, what, sp[0].len, want);
    }
    /* Codes past fan_out in a row's last byte are padding, ignored (as the SDK does). */
    for (uint32_t j = 0; j < pw->fan_in; ++j) {
        const uint8_t *row = sp[0].p + j * stride;
        for (uint32_t k = 0; k < pw->fan_out; ++k) {
            if (((row[k >> 2] >> ((k & 3u) * 2u)) & 3u) == 3u) {
                return layer_fail(ctx, ES_ERR_MODEL_INVALID,
                                  "layer %u%s: ternary code 0b11 at row %u, column %u", l, what,
                                  j, k);
            }
        }
    }
    const char *names[2] = {"a_pos", "a_neg"};
    const uint32_t scalars[2] = {pw->a_pos, pw->a_neg};
    for (int i = 0; i < 2; ++i) {
        const es_span_t *pn = &sp[1 + i];
        if (pn->len != 0u) {
            if (pn->len != pw->fan_out) {
                return layer_fail(ctx, ES_ERR_MODEL_INVALID, "layer %u%s: %s_per_neuron has %u "
                                  "values for %u neurons", l, what, names[i], pn->len, pw->fan_out);
            }
            for (uint32_t k = 0; k < pn->len; ++k) {
                if (pn->p[k] == 0u) {
                    return layer_fail(ctx, ES_ERR_MODEL_INVALID,
                                      "layer %u%s: %s of neuron %u is 0 (1..255)", l, what,
                                      names[i], k);
                }
            }
        } else if (scalars[i] < 1u || scalars[i] > 255u) {
            return layer_fail(ctx, ES_ERR_MODEL_INVALID, "layer %u%s: %s=%u outside 1..255", l,
                              what, names[i], scalars[i]);
        }
    }
    w->a_pos = (uint8_t)(sp[1].len ? 0u : pw->a_pos);
    w->a_neg = (uint8_t)(sp[2].len ? 0u : pw->a_neg);
    w->a_pos_pn = sp[1].len ? sp[1].p : NULL;
    w->a_neg_pn = sp[2].len ? sp[2].p : NULL;
    return true;
}

static bool take_neurons(es_parse_ctx_t *ctx, const edgespike_Neurons *pn, uint32_t size,
                         const es_span_t *vth_pn, const es_span_t *bias_pn, es_neurons_t *n)
{
    const unsigned l = ctx->count;
    const char *dnames[3] = {"du", "dv", "adapt_decay"};
    const uint32_t dvals[3] = {pn->du, pn->dv, pn->adapt_decay};
    for (int i = 0; i < 3; ++i) {
        if (dvals[i] > ES_DECAY_UNITY) {
            return layer_fail(ctx, ES_ERR_MODEL_INVALID, "layer %u: %s=%u outside 0..4096", l,
                              dnames[i], dvals[i]);
        }
    }
    if (pn->vth > ES_VTH_MAX) {
        return layer_fail(ctx, ES_ERR_MODEL_INVALID, "layer %u: vth=%u outside 0..131071", l, pn->vth);
    }
    if (pn->bias_mant < -4096 || pn->bias_mant > 4095) {
        return layer_fail(ctx, ES_ERR_MODEL_INVALID, "layer %u: bias_mant=%d outside -4096..4095",
                          l, pn->bias_mant);
    }
    if (pn->bias_exp > 7u) {
        return layer_fail(ctx, ES_ERR_MODEL_INVALID, "layer %u: bias_exp=%u outside 0..7", l,
                          pn->bias_exp);
    }
    if (pn->reset != edgespike_ResetMode_RESET_ZERO && pn->reset != edgespike_ResetMode_RESET_SUBTRACT) {
        return layer_fail(ctx, ES_ERR_UNSUPPORTED, "layer %u: unknown reset mode %d", l,
                          (int32_t)pn->reset);
    }
    if (pn->refractory > 255u) {
        return layer_fail(ctx, ES_ERR_MODEL_INVALID, "layer %u: refractory=%u outside 0..255", l,
                          pn->refractory);
    }
    if (pn->adapt_step > ES_VTH_MAX) {
        return layer_fail(ctx, ES_ERR_MODEL_INVALID, "layer %u: adapt_step=%u outside 0..131071",
                          l, pn->adapt_step);
    }
    if (vth_pn->len != 0u) {
        if (vth_pn->len != 4u * size) {
            return layer_fail(ctx, ES_ERR_MODEL_INVALID, "layer %u: vth_per_neuron is %u bytes, not %u",
                              l, vth_pn->len, 4u * size);
        }
        for (uint32_t k = 0; k < size; ++k) {
            uint32_t vth = es_le32(vth_pn->p + 4u * k);
            if (vth > ES_VTH_MAX) {
                return layer_fail(ctx, ES_ERR_MODEL_INVALID, "layer %u: vth of neuron %u is %u "
                                  "(0..131071)", l, k, vth);
            }
        }
    }
    if (bias_pn->len != 0u) {
        if (bias_pn->len != 2u * size) {
            return layer_fail(ctx, ES_ERR_MODEL_INVALID, "layer %u: bias_per_neuron is %u bytes, not %u",
                              l, bias_pn->len, 2u * size);
        }
        for (uint32_t k = 0; k < size; ++k) {
            int16_t b = es_le16s(bias_pn->p + 2u * k);
            if (b < -4096 || b > 4095) {
                return layer_fail(ctx, ES_ERR_MODEL_INVALID, "layer %u: bias of neuron %u is %d "
                                  "(-4096..4095)", l, k, (int32_t)b);
            }
        }
    }
    n->du = (uint16_t)pn->du;
    n->dv = (uint16_t)pn->dv;
    n->adapt_decay = (uint16_t)pn->adapt_decay;
    n->vth = pn->vth;
    n->vth_pn = vth_pn->len ? vth_pn->p : NULL;
    n->bias_mant = (int16_t)pn->bias_mant;
    n->bias_pn = bias_pn->len ? bias_pn->p : NULL;
    n->bias_exp = (uint8_t)pn->bias_exp;
    n->reset = pn->reset == edgespike_ResetMode_RESET_SUBTRACT ? ES_RESET_SUBTRACT : ES_RESET_ZERO;
    n->refractory = (uint8_t)pn->refractory;
    n->adapt_step = pn->adapt_step;
    return true;
}

/* nanopb callback for one element of Model.layers. */
static bool layer_cb(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    (void)field;
    es_parse_ctx_t *ctx = (es_parse_ctx_t *)*arg;
    if (ctx->count >= ES_MAX_LAYERS) {
        return layer_fail(ctx, ES_ERR_MODEL_TOO_LARGE, "more than %u layers",
                          (uint32_t)ES_MAX_LAYERS);
    }
    /* spans: weights (data, a_pos, a_neg), recurrent (same), vth, bias */
    es_span_t sp[8];
    memset(sp, 0, sizeof(sp));
    edgespike_Layer lm = edgespike_Layer_init_zero;
    pb_callback_t *cbs[8] = {
        &lm.weights.data, &lm.weights.a_pos_per_neuron, &lm.weights.a_neg_per_neuron,
        &lm.recurrent.data, &lm.recurrent.a_pos_per_neuron, &lm.recurrent.a_neg_per_neuron,
        &lm.neurons.vth_per_neuron, &lm.neurons.bias_per_neuron,
    };
    for (int i = 0; i < 8; ++i) {
        sp[i].blob = ctx->blob;
        sp[i].blob_len = ctx->blob_len;
        cbs[i]->funcs.decode = span_cb;
        cbs[i]->arg = &sp[i];
    }
    if (!pb_decode(stream, edgespike_Layer_fields, &lm)) {
        return false; /* nanopb's message becomes the error text */
    }
    es_layer_t *L = &ctx->m->layers[ctx->count];
    memset(L, 0, sizeof(*L));
    if (!take_weights(ctx, "", &lm.weights, &sp[0], &L->w)) {
        return false;
    }
    if (lm.size != lm.weights.fan_out) {
        return layer_fail(ctx, ES_ERR_MODEL_INVALID, "layer %u: size %u != weights fan_out %u",
                          (uint32_t)ctx->count, lm.size, lm.weights.fan_out);
    }
    L->size = L->w.fan_out;
    if (lm.kind == edgespike_LayerKind_LAYER_RECURRENT) {
        L->recurrent = true;
        if (!take_weights(ctx, " recurrent", &lm.recurrent, &sp[3], &L->rec)) {
            return false;
        }
        if (L->rec.fan_in != L->size || L->rec.fan_out != L->size) {
            return layer_fail(ctx, ES_ERR_MODEL_INVALID, "layer %u: recurrent weights are %ux%u, "
                              "not %ux%u", (uint32_t)ctx->count, (uint32_t)L->rec.fan_in,
                              (uint32_t)L->rec.fan_out, (uint32_t)L->size, (uint32_t)L->size);
        }
    } else if (lm.kind != edgespike_LayerKind_LAYER_DENSE) {
        return layer_fail(ctx, ES_ERR_UNSUPPORTED, "layer %u: unknown layer kind %d",
                          (uint32_t)ctx->count, (int32_t)lm.kind);
    }
    if (!take_neurons(ctx, &lm.neurons, L->size, &sp[6], &sp[7], &L->n)) {
        return false;
    }
    ctx->count++;
    return true;
}

int32_t es_weight_at(const es_weights_t *w, uint32_t j, uint32_t k)
{
    if (w->encoding == ES_W_INT8) {
        return (int8_t)w->data[j * w->fan_out + k];
    }
    uint32_t stride = (w->fan_out + 3u) / 4u;
    uint32_t code = (w->data[j * stride + (k >> 2)] >> ((k & 3u) * 2u)) & 3u;
    if (code == 1u) {
        return w->a_pos_pn ? w->a_pos_pn[k] : w->a_pos;
    }
    if (code == 2u) {
        return -(int32_t)(w->a_neg_pn ? w->a_neg_pn[k] : w->a_neg);
    }
    return 0;
}

/* Column sums of |weights| over output neurons: max_k max(P_k, N_k) and max_k (P_k + N_k),
 * where P_k / N_k sum the positive / negative weights into neuron k. */
static void column_bounds(const es_weights_t *w, uint64_t *max_pn, uint64_t *max_sum)
{
    *max_pn = 0;
    *max_sum = 0;
    for (uint32_t k = 0; k < w->fan_out; ++k) {
        uint64_t pos = 0, neg = 0;
        for (uint32_t j = 0; j < w->fan_in; ++j) {
            int32_t v = es_weight_at(w, j, k);
            if (v > 0) {
                pos += (uint64_t)v;
            } else {
                neg += (uint64_t)(-v);
            }
        }
        const uint64_t m = pos > neg ? pos : neg;
        *max_pn = m > *max_pn ? m : *max_pn;
        *max_sum = pos + neg > *max_sum ? pos + neg : *max_sum;
    }
}

/* The largest |shift(sum, exp)| for |sum| <= worst; worst itself when it reaches 2^31 (the
 * kernels sum in int32), as Weights.worst_case_input of the SDK. */
static uint64_t shifted_bound(uint64_t worst, int8_t exp)
{
    if (worst >= ES_SUM_LIMIT) {
        return worst;
    }
    if (exp >= 0) {
        return worst << exp;
    }
    uint32_t s = (uint32_t)(-exp);
    return (worst + (((uint64_t)1 << s) - 1u)) >> s; /* ceil, as -((-worst) >> s) */
}

es_status_t es_model_parse(es_model_t *m, const uint8_t *blob, uint32_t len, es_error_t *err)
{
    if (err != NULL) {
        err->code = ES_OK;
        err->detail = 0;
        err->text[0] = '\0';
    }
    if (m == NULL || blob == NULL) {
        return es_error_set(err, ES_ERR_INTERNAL, 0, "no model or blob given");
    }
    memset(m, 0, sizeof(*m));
    if (len < 6u || blob[len - 6u] != ES_HASH_TAG0 || blob[len - 5u] != ES_HASH_TAG1) {
        return es_error_set(err, ES_ERR_MODEL_CRC, len,
                            "not a model blob: content hash missing (truncated?)");
    }
    uint32_t stored = es_le32(blob + len - 4u);
    uint32_t actual = es_crc32(0, blob, len - 6u);
    if (stored != actual) {
        return es_error_set(err, ES_ERR_MODEL_CRC, len, "content hash mismatch (corrupted blob)");
    }

    es_wire_t wire = {blob, err, 0u};
    if (!wire_message(&wire, 0u, len, WM_MODEL)) {
        return ES_ERR_DECODE;
    }

    es_parse_ctx_t ctx = {m, err, 0, false, blob, len};
    edgespike_Model pm = edgespike_Model_init_zero;
    pm.layers.funcs.decode = layer_cb;
    pm.layers.arg = &ctx;
    pb_istream_t stream = pb_istream_from_buffer(blob, len);
    if (!pb_decode(&stream, edgespike_Model_fields, &pm)) {
        if (ctx.own_error) {
            return err != NULL ? err->code : ES_ERR_MODEL_INVALID;
        }
        return es_error_set(err, ES_ERR_DECODE, ctx.count, "blob does not decode (layer %u): %s",
                            (uint32_t)ctx.count, PB_GET_ERROR(&stream));
    }
    if (pm.format_version != ES_FORMAT_VERSION) {
        return es_error_set(err, ES_ERR_UNSUPPORTED, pm.format_version,
                            "blob format version %u; this firmware reads 1", pm.format_version);
    }
    if (ctx.count == 0u) {
        return es_error_set(err, ES_ERR_MODEL_INVALID, 0, "a model needs at least one layer");
    }
    if (pm.input_size < 1u || pm.input_size > ES_MAX_LAYER_SIZE) {
        return es_error_set(err, pm.input_size ? ES_ERR_MODEL_TOO_LARGE : ES_ERR_MODEL_INVALID, 0,
                            "input_size %u outside 1..%u", pm.input_size, (uint32_t)ES_MAX_LAYER_SIZE);
    }
    if (pm.timesteps < 1u || pm.timesteps > 65535u) {
        return es_error_set(err, ES_ERR_MODEL_INVALID, 0, "timesteps=%u outside 1..65535",
                            pm.timesteps);
    }
    if (pm.input_kind != edgespike_InputKind_INPUT_SPIKES &&
        pm.input_kind != edgespike_InputKind_INPUT_VALUES) {
        return es_error_set(err, ES_ERR_UNSUPPORTED, 0, "unknown input kind %d",
                            (int32_t)pm.input_kind);
    }
    if ((uint32_t)pm.decoding > 3u) {
        return es_error_set(err, ES_ERR_UNSUPPORTED, 0, "unknown decoding %d", (int32_t)pm.decoding);
    }
    /* The device does not encode on board yet, but a blob whose encoder the SDK cannot read
     * is refused on both sides. */
    if (wire.encoder_kind > (uint32_t)_edgespike_EncoderKind_MAX) {
        return es_error_set(err, ES_ERR_UNSUPPORTED, 0, "unknown encoder kind %d",
                            (int32_t)wire.encoder_kind);
    }
    uint32_t bound = 1u;
    if (pm.input_kind == edgespike_InputKind_INPUT_VALUES) {
        if (pm.input_max_abs < 1u || pm.input_max_abs > 32767u) {
            return es_error_set(err, ES_ERR_MODEL_INVALID, 0,
                                "input_max_abs=%u outside 1..32767 for direct encoding",
                                pm.input_max_abs);
        }
        bound = pm.input_max_abs;
    }
    m->input_size = (uint16_t)pm.input_size;
    m->input_kind = pm.input_kind == edgespike_InputKind_INPUT_VALUES ? ES_INPUT_VALUES : ES_INPUT_SPIKES;
    m->input_max_abs = (uint16_t)bound;
    m->timesteps = (uint16_t)pm.timesteps;
    m->decoding = (es_decoding_t)pm.decoding;
    m->dt_us = pm.dt_us;
    if (pm.stream_window > 65535u || pm.stream_hop > 65535u) {
        return es_error_set(err, ES_ERR_MODEL_INVALID, 0, "stream_window/stream_hop above 65535");
    }
    m->stream_window = (uint16_t)pm.stream_window;
    m->stream_hop = (uint16_t)pm.stream_hop;
    m->n_layers = ctx.count;
    m->crc32 = actual;
    m->blob_len = len;

    uint32_t fan_in = pm.input_size;
    for (uint32_t i = 0; i < m->n_layers; ++i) {
        es_layer_t *L = &m->layers[i];
        if (L->w.fan_in != fan_in) {
            return es_error_set(err, ES_ERR_MODEL_INVALID, i, "layer %u: fan_in %u != previous size %u",
                                i, (uint32_t)L->w.fan_in, fan_in);
        }
        const uint32_t lbound = i == 0u ? bound : 1u;
        uint64_t max_pn, max_sum, rec_pn = 0, rec_sum = 0;
        column_bounds(&L->w, &max_pn, &max_sum);
        /* the validator's rule (SEMANTICS.md): max(P, N) x bound, shifted */
        uint64_t worst = shifted_bound(max_pn * lbound, L->w.exp);
        uint64_t rec_worst = 0;
        if (L->recurrent) {
            column_bounds(&L->rec, &rec_pn, &rec_sum);
            rec_worst = shifted_bound(rec_pn, L->rec.exp);
        }
        if (worst < ES_SUM_LIMIT) {
            worst += rec_worst;
        }
        if (worst >= ES_A_IN_LIMIT) {
            uint32_t shown = worst > 0xFFFFFFFFu ? 0xFFFFFFFFu : (uint32_t)worst;
            return es_error_set(err, ES_ERR_MODEL_INVALID, i, "layer %u: worst-case input %u "
                                "reaches 2^17; lower the weight exp", i, shown);
        }
        /* Signed direct inputs can meet every weight of a column with its own sign: the sums
         * reach (P + N) x bound. Facts for the fast paths (the results never depend on them). */
        const bool signed_in = i == 0u && m->input_kind == ES_INPUT_VALUES;
        const uint64_t sum_worst = signed_in ? max_sum * lbound : max_pn;
        L->flags = 0;
        if (sum_worst < ES_SUM_LIMIT) {
            L->flags |= ES_LAYER_SUM32;
            if (shifted_bound(sum_worst, L->w.exp) + rec_worst < ES_A_IN_LIMIT) {
                L->flags |= ES_LAYER_SMALL_INPUT;
            }
        }
        if (signed_in && L->w.encoding == ES_W_TERNARY2 && L->w.a_pos_pn == NULL &&
            L->w.a_neg_pn == NULL) {
            const uint32_t amax = L->w.a_pos > L->w.a_neg ? L->w.a_pos : L->w.a_neg;
            if ((uint32_t)lbound * amax < 32768u) {
                L->w.flags |= ES_W_VALUES16;
            }
        }
        fan_in = L->size;
    }
    return ES_OK;
}
