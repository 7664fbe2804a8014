/*
 * EdgeSpike core unit tests: CRC-32, the LIF arithmetic at its edges, the model parser on
 * malformed blobs, and whole inferences against the numpy reference (test_vectors.h).
 * Runs on the host and on the Cortex-M under QEMU (semihosting): printf only, no files.
 * Prints "N passed, N failed"; exit status 0 when everything passed.
 */
#include <stdio.h>
#include <string.h>

#include "es_engine.h"
#include "es_internal.h"
#include "es_lif.h"
#include "es_runner.h"
#include "es_stream.h"
#include "test_vectors.h"

static unsigned g_pass, g_fail;

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (cond) {                                                        \
            g_pass++;                                                      \
        } else {                                                           \
            g_fail++;                                                      \
            printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);         \
        }                                                                  \
    } while (0)

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static uint64_t g_arena[2048]; /* 16 KB, 8-byte aligned */
static uint8_t g_blob[512];

static bool contains(const char *s, const char *sub)
{
    return strstr(s, sub) != NULL;
}

static void test_crc32(void)
{
    const uint8_t check[] = "123456789";
    CHECK(es_crc32(0, check, 9) == 0xCBF43926u);
    CHECK(es_crc32(0, check, 0) == 0u);
    CHECK(es_crc32(0, (const uint8_t *)"a", 1) == 0xE8B7BE43u);
    /* continuation, as zlib */
    CHECK(es_crc32(es_crc32(0, check, 4), check + 4, 5) == 0xCBF43926u);
    const uint8_t zeros[4] = {0, 0, 0, 0};
    CHECK(es_crc32(0, zeros, 4) == 0x2144DF1Cu);
}

static void test_arith(void)
{
    volatile int32_t m1 = -1, m3 = -3;
    CHECK((m1 >> 1) == -1); /* arithmetic right shift, which the core relies on */
    CHECK(es_shift32(m3, -1) == -2);  /* floor */
    CHECK(es_shift32(-3, 2) == -12);
    CHECK(es_shift64(-5, -31) == -1);
    CHECK(es_shift64(5, -31) == 0);
    /* trunc0 rounds toward zero, for negatives too */
    CHECK(es_decay(-1, 1) == 0);
    CHECK(es_decay(1, 1) == 0);
    CHECK(es_decay(-4097, 0) == -4097);
    CHECK(es_decay(-4097, 2048) == -2048);
    CHECK(es_decay(4097, 2048) == 2048);
    CHECK(es_decay(-5000, 2048) == -2500);
    CHECK(es_decay(12345, 4096) == 0);
    CHECK(es_decay(8388608, 1) == 8386560);   /* 2^23 * 4095 / 4096: needs 64 bits */
    CHECK(es_decay(-8388608, 1) == -8386560);
    CHECK(es_decay(-8388607, 4095) == -2047); /* -2047.99 toward zero */
    /* one wrap, as Lava: keeps +2^23, maps -2^23 to +2^23 */
    CHECK(es_wrap24(8388608) == 8388608);
    CHECK(es_wrap24(8388609) == -8388607);
    CHECK(es_wrap24(-8388608) == 8388608);
    CHECK(es_wrap24(-8388607) == -8388607);
    CHECK(es_wrap24(-8388609) == 8388607);
    CHECK(es_wrap24(16777215) == -1);
    CHECK(es_clip24(8388608) == 8388607);
    CHECK(es_clip24(-8388608) == -8388607);
    CHECK(es_clip24(-8388607) == -8388607);
    CHECK(es_clip24(100) == 100);
}

/* One neuron, one step, a_in given directly. */
static uint32_t lif1(const es_neurons_t *n, int32_t *u, int32_t *v, int32_t *th, uint8_t *ref,
                     const int32_t *a, uint16_t *spk)
{
    const es_lif_state_t st = {u, v, th, ref};
    const int32_t a6 = a[0] * 64;
    return es_lif_update(n, &st, 0, 1, &a6, true, spk, NULL);
}

static void test_lif(void)
{
    es_neurons_t n;
    memset(&n, 0, sizeof(n));
    n.du = 4096; /* no current state */
    n.dv = 0;
    n.vth = 1;   /* threshold 64 */
    n.refractory = 2;
    n.reset = ES_RESET_ZERO;
    int32_t u[1] = {0}, v[1] = {0}, a[1] = {2}; /* a_in << 6 = 128 */
    uint8_t ref[1] = {0};
    uint16_t spk[1];
    CHECK(lif1(&n, u, v, NULL, ref, a, spk) == 1u);
    CHECK(spk[0] == 0u && v[0] == 0 && ref[0] == 2u && u[0] == 128);
    /* two refractory steps: no spike, v held, u still integrates */
    CHECK(lif1(&n, u, v, NULL, ref, a, spk) == 0u);
    CHECK(v[0] == 0 && ref[0] == 1u);
    CHECK(lif1(&n, u, v, NULL, ref, a, spk) == 0u);
    CHECK(v[0] == 0 && ref[0] == 0u);
    CHECK(lif1(&n, u, v, NULL, ref, a, spk) == 1u);

    /* reset by subtraction and an adaptive threshold */
    memset(&n, 0, sizeof(n));
    n.du = 4096;
    n.dv = 0;
    n.vth = 1;
    n.reset = ES_RESET_SUBTRACT;
    n.adapt_step = 2;    /* +128 per spike */
    n.adapt_decay = 2048; /* halves per step */
    int32_t th[1] = {0};
    u[0] = 0;
    v[0] = 0;
    a[0] = 3; /* 192 per step */
    CHECK(lif1(&n, u, v, th, NULL, a, spk) == 1u);
    CHECK(v[0] == 192 - 64 && th[0] == 128);
    /* v = 128 + 192 = 320 > 64 + 128: spike, v = 320 - 192 = 128; th = 64 + 128 */
    CHECK(lif1(&n, u, v, th, NULL, a, spk) == 1u);
    CHECK(v[0] == 128 && th[0] == 192);

    /* clip of v at 2^23 - 1, wrap of u past 2^23 */
    memset(&n, 0, sizeof(n));
    n.du = 0;
    n.dv = 0;
    n.vth = 131071;
    u[0] = 8388600;
    v[0] = 8388000;
    a[0] = 1; /* +64: 8388664 > 2^23 wraps to 8388664 - 2^24 */
    CHECK(lif1(&n, u, v, NULL, NULL, a, spk) == 0u);
    CHECK(u[0] == 8388664 - 16777216);
    CHECK(v[0] == 8388000 + (8388664 - 16777216));
    /* clipped to 2^23 - 1 = 8388607 > theta = 131071 << 6 = 8388544: spike, subtract */
    n.reset = ES_RESET_SUBTRACT;
    u[0] = 100;
    v[0] = 8388600;
    CHECK(lif1(&n, u, v, NULL, NULL, a, spk) == 1u);
    CHECK(v[0] == 8388607 - 8388544);
}

static es_status_t parse_copy(es_model_t *m, const uint8_t *src, uint32_t len, es_error_t *err)
{
    memcpy(g_blob, src, len);
    return es_model_parse(m, g_blob, len, err);
}

/* Re-seal the blob in g_blob after an edit (content hash of everything before the trailer). */
static void reseal(uint32_t len)
{
    uint32_t crc = es_crc32(0, g_blob, len - 6u);
    for (int i = 0; i < 4; ++i) {
        g_blob[len - 4u + (uint32_t)i] = (uint8_t)(crc >> (8 * i));
    }
}

/* xorshift32: a reproducible stream of test values */
static uint32_t g_rng = 0x9E3779B9u;
static uint32_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 17;
    g_rng ^= g_rng << 5;
    return g_rng;
}

/* A value from the edges of [lo, hi] or anywhere in between. */
static int32_t pick(int32_t lo, int32_t hi)
{
    const uint32_t r = rnd() % 8u;
    if (r == 0u) return lo;
    if (r == 1u) return hi;
    if (r == 2u) return lo + 1;
    if (r == 3u) return hi - 1;
    if (r == 4u) return 0;
    return lo + (int32_t)(rnd() % (uint32_t)(hi - lo + 1));
}

/* The fast neuron update (reset to zero, per-layer bias) equals the general one, neuron for
 * neuron, over random parameters and states at the 24-bit edges. The general path is taken by
 * giving refractory counters that stay 0 (refractory = 0). */
static void test_lif_fast_equals_general(void)
{
    enum { N = 37 };
    static int32_t u1[N], v1[N], u2[N], v2[N], a6[N];
    static uint8_t ref[N];
    static uint8_t vth_pn[4 * N];
    uint16_t s1[N], s2[N];
    unsigned bad = 0;
    for (unsigned trial = 0; trial < 3000u; ++trial) {
        es_neurons_t n;
        memset(&n, 0, sizeof(n));
        static const uint16_t decays[] = {0, 1, 410, 2047, 2048, 2049, 4095, 4096};
        n.du = (uint16_t)(rnd() % 3u == 0u ? decays[rnd() % 8u] : rnd() % 4097u);
        n.dv = (uint16_t)(rnd() % 3u == 0u ? decays[rnd() % 8u] : rnd() % 4097u);
        n.vth = (uint32_t)pick(0, 131071);
        n.bias_mant = (int16_t)pick(-4096, 4095);
        n.bias_exp = (uint8_t)(rnd() % 8u);
        n.vth_pn = NULL;
        if (rnd() % 2u) {
            for (unsigned k = 0; k < N; ++k) {
                const uint32_t t = (uint32_t)pick(0, 131071);
                vth_pn[4 * k] = (uint8_t)t;
                vth_pn[4 * k + 1] = (uint8_t)(t >> 8);
                vth_pn[4 * k + 2] = (uint8_t)(t >> 16);
                vth_pn[4 * k + 3] = 0;
            }
            n.vth_pn = vth_pn;
        }
        const bool small = rnd() % 4u != 0u;
        const bool has_in = rnd() % 5u != 0u;
        for (unsigned k = 0; k < N; ++k) {
            u1[k] = u2[k] = pick(-8388607, 8388608);
            v1[k] = v2[k] = pick(-8388607, 8388607);
            /* |a_in| below 2^17 (small) or 2^18 (signed direct inputs) */
            const int32_t lim = (small ? 131071 : 262143);
            a6[k] = pick(-lim, lim) * 64;
            ref[k] = 0;
        }
        const es_lif_state_t fast = {u1, v1, NULL, NULL};
        const es_lif_state_t general = {u2, v2, NULL, ref};
        const uint32_t k0 = rnd() % 4u;
        const uint32_t n1 = es_lif_update(&n, &fast, k0, N, has_in ? a6 + k0 : NULL, small, s1, NULL);
        const uint32_t n2 = es_lif_update(&n, &general, k0, N, has_in ? a6 + k0 : NULL, small, s2, NULL);
        bool same = n1 == n2 && memcmp(s1, s2, 2u * n1) == 0;
        for (unsigned k = 0; k < N; ++k) {
            same = same && u1[k] == u2[k] && v1[k] == v2[k];
        }
        if (!same && bad++ < 3u) {
            printf("fast != general: trial %u du %u dv %u vth %u bias %d<<%u small %d in %d\n",
                   trial, n.du, n.dv, (unsigned)n.vth, n.bias_mant, n.bias_exp, small, has_in);
        }
    }
    CHECK(bad == 0u);
}

static void test_parser(void)
{
    es_model_t m;
    es_error_t err;
    const uint32_t len = (uint32_t)sizeof(tv_int8_blob);
    CHECK(parse_copy(&m, tv_int8_blob, len, &err) == ES_OK);
    CHECK(m.n_layers == 2u && m.input_size == 6u && m.timesteps == 12u);
    CHECK(m.layers[1].recurrent && m.layers[0].n.vth_pn != NULL && m.layers[0].n.refractory == 2u);
    CHECK(m.layers[0].w.data >= g_blob && m.layers[0].w.data < g_blob + len); /* zero copy */
    CHECK(es_engine_arena_bytes(&m) == TV_INT8_ARENA);

    /* truncated at every length: always rejected, never read past the end */
    unsigned rejected = 0;
    for (uint32_t cut = 0; cut < len; ++cut) {
        memcpy(g_blob, tv_int8_blob, len);
        rejected += es_model_parse(&m, g_blob, cut, &err) != ES_OK;
    }
    CHECK(rejected == len);
    /* truncated body with a valid hash for the shorter bytes: rejected with a reason, except
     * cuts between whole trailing fields (dt_us, encoder), which leave a valid model */
    unsigned clean = 0, accepted = 0;
    for (uint32_t cut = 0; cut < len - 6u; ++cut) {
        memcpy(g_blob, tv_int8_blob, cut);
        memcpy(g_blob + cut, tv_int8_blob + len - 6u, 6);
        reseal(cut + 6u);
        es_status_t st = es_model_parse(&m, g_blob, cut + 6u, &err);
        accepted += st == ES_OK;
        clean += st == ES_OK || ((st == ES_ERR_DECODE || st == ES_ERR_MODEL_INVALID ||
                                  st == ES_ERR_UNSUPPORTED) && err.text[0] != '\0');
    }
    CHECK(clean == len - 6u);
    CHECK(accepted >= 1u && accepted <= 5u); /* whole trailing fields only */
    printf("truncations with a valid hash: %u of %u accepted\n", accepted, (unsigned)(len - 6u));

    /* a flipped byte without re-sealing: hash mismatch */
    memcpy(g_blob, tv_int8_blob, len);
    g_blob[10] ^= 0x04;
    CHECK(es_model_parse(&m, g_blob, len, &err) == ES_ERR_MODEL_CRC);
    CHECK(contains(err.text, "hash mismatch"));

    /* every single-byte flip with a fixed hash: a clean status, and when accepted, a model
     * whose arrays all lie inside the blob and which runs */
    unsigned ok = 0, bad = 0;
    for (uint32_t pos = 0; pos < len - 6u; ++pos) {
        for (unsigned bit = 0; bit < 8u; ++bit) {
            memcpy(g_blob, tv_int8_blob, len);
            g_blob[pos] ^= (uint8_t)(1u << bit);
            reseal(len);
            es_status_t st = es_model_parse(&m, g_blob, len, &err);
            if (st != ES_OK) {
                bad += (st == ES_ERR_MODEL_INVALID || st == ES_ERR_DECODE ||
                        st == ES_ERR_UNSUPPORTED || st == ES_ERR_MODEL_TOO_LARGE) &&
                       err.text[0] != '\0';
                continue;
            }
            bool inside = true;
            for (uint32_t l = 0; l < m.n_layers; ++l) {
                const es_weights_t *w = &m.layers[l].w;
                inside = inside && w->data >= g_blob && w->data + w->data_len <= g_blob + len;
            }
            es_engine_t e;
            es_result_t res;
            int64_t scores[ES_MAX_LAYER_SIZE < 64 ? ES_MAX_LAYER_SIZE : 64];
            memset(&res, 0, sizeof(res));
            res.scores = scores;
            es_input_t in = {NULL, 0, NULL, 0, false};
            if (inside && es_engine_arena_bytes(&m) <= sizeof(g_arena) &&
                m.layers[m.n_layers - 1u].size <= 64u && m.input_kind == ES_INPUT_SPIKES &&
                es_engine_init(&e, &m, g_arena, sizeof(g_arena), &err) == ES_OK &&
                es_engine_run(&e, &in, &res, &err) == ES_OK) {
                ok++;
            } else if (inside) {
                ok++; /* accepted but too big for this test's buffers, or value input */
            }
        }
    }
    CHECK(ok + bad == (len - 6u) * 8u);

    /* ternary code 0b11 */
    CHECK(parse_copy(&m, tv_bad_code_blob, (uint32_t)sizeof(tv_bad_code_blob), &err) == ES_ERR_MODEL_INVALID);
    CHECK(contains(err.text, "ternary code 0b11 at row 2, column 5"));
    CHECK(err.detail == 0u);
}

static void test_int8_run(void)
{
    es_model_t m;
    es_engine_t e;
    es_error_t err;
    CHECK(es_model_parse(&m, tv_int8_blob, (uint32_t)sizeof(tv_int8_blob), &err) == ES_OK);
    CHECK(es_engine_init(&e, &m, g_arena, 8, &err) == ES_ERR_MODEL_TOO_LARGE);
    CHECK(es_engine_init(&e, &m, (uint8_t *)g_arena + 4, sizeof(g_arena) - 8, &err) == ES_ERR_INTERNAL);
    CHECK(es_engine_init(&e, &m, g_arena, sizeof(g_arena), &err) == ES_OK);
    int64_t scores[3];
    uint32_t spikes[4];
    es_result_t res;
    memset(&res, 0, sizeof(res));
    res.scores = scores;
    res.spike_events = spikes;
    res.spike_capacity = 4;
    es_input_t in = {tv_int8_events, (uint32_t)NELEM(tv_int8_events), NULL, 0, false};
    for (int rep = 0; rep < 2; ++rep) { /* the second run must start from reset state */
        CHECK(es_engine_run(&e, &in, &res, &err) == ES_OK);
        CHECK(res.prediction == TV_INT8_PREDICTION);
        CHECK(memcmp(scores, tv_int8_scores, sizeof(scores)) == 0);
        bool same = true;
        for (uint32_t l = 0; l < 2; ++l) {
            same = same && res.layers[l].input_events == tv_int8_counters[4 * l] &&
                   res.layers[l].synops == tv_int8_counters[4 * l + 1] &&
                   res.layers[l].neuron_updates == tv_int8_counters[4 * l + 2] &&
                   res.layers[l].spikes == tv_int8_counters[4 * l + 3];
        }
        CHECK(same);
        CHECK(memcmp(es_engine_v(&e, 1), tv_int8_v_last, sizeof(tv_int8_v_last)) == 0);
        CHECK(memcmp(es_engine_u(&e, 0), tv_int8_u0, sizeof(tv_int8_u0)) == 0);
        CHECK(res.n_spike_events == 4u && res.spikes_truncated == (tv_int8_counters[7] > 4u));
    }
    /* bad inputs are rejected with a reason, the engine stays usable */
    uint32_t bad_step[1] = {(12u << 16) | 0u};
    es_input_t b1 = {bad_step, 1, NULL, 0, false};
    CHECK(es_engine_run(&e, &b1, &res, &err) == ES_ERR_BAD_INPUT && contains(err.text, "step 12"));
    uint32_t bad_idx[1] = {(1u << 16) | 6u};
    es_input_t b2 = {bad_idx, 1, NULL, 0, false};
    CHECK(es_engine_run(&e, &b2, &res, &err) == ES_ERR_BAD_INPUT && contains(err.text, "index 6"));
    uint32_t unsorted[2] = {(2u << 16) | 1u, (1u << 16) | 1u};
    es_input_t b3 = {unsorted, 2, NULL, 0, false};
    CHECK(es_engine_run(&e, &b3, &res, &err) == ES_ERR_BAD_INPUT && err.detail == 1u);
    CHECK(es_engine_run(&e, &in, &res, &err) == ES_OK && res.prediction == TV_INT8_PREDICTION);

    /* streaming: es_engine_step over the same input gives the same scores */
    es_counters_t c[ES_MAX_LAYERS];
    memset(c, 0, sizeof(c));
    es_engine_reset(&e);
    uint32_t next = 0;
    for (uint32_t t = 0; t < m.timesteps; ++t) {
        uint16_t idx[6];
        uint16_t n = 0;
        while (next < NELEM(tv_int8_events) && (tv_int8_events[next] >> 16) == t) {
            idx[n++] = (uint16_t)(tv_int8_events[next++] & 0xFFFFu);
        }
        CHECK(es_engine_step(&e, idx, n, NULL, c) == ES_OK);
    }
    CHECK(memcmp(e.scores, tv_int8_scores, sizeof(tv_int8_scores)) == 0);
    CHECK(c[1].synops == tv_int8_counters[5]);
    uint16_t oob[1] = {6};
    CHECK(es_engine_step(&e, oob, 1, NULL, c) == ES_ERR_BAD_INPUT);
}

static uint64_t fake_clock(void *ctx)
{
    uint64_t *t = (uint64_t *)ctx;
    return *t += 10u;
}

static void test_ternary_run(void)
{
    /* through the flat runner, as the host library and the QEMU runner use it */
    int64_t scores[7];
    int32_t pred = -1;
    uint64_t counters[ES_RUNNER_COUNTERS];
    int32_t th[7];
    uint64_t cycles = 0, clock = 0;
    char text[96];
    CHECK(es_arena_bytes_for_blob(tv_tern_blob, (uint32_t)sizeof(tv_tern_blob)) == TV_TERN_ARENA);
    int32_t st = es_run_blob(tv_tern_blob, (uint32_t)sizeof(tv_tern_blob), NULL, 0, tv_tern_values,
                             (uint32_t)NELEM(tv_tern_values), 0u, g_arena, sizeof(g_arena), scores, &pred,
                             counters, NULL, NULL, NULL, th, &cycles, fake_clock, &clock, text,
                             sizeof(text));
    CHECK(st == ES_OK);
    CHECK(pred == TV_TERN_PREDICTION);
    CHECK(memcmp(scores, tv_tern_scores, sizeof(scores)) == 0);
    CHECK(memcmp(th, tv_tern_th, sizeof(th)) == 0);
    CHECK(cycles > 0u && counters[4] > 0u && counters[4] < cycles);
    int32_t big[36];
    memcpy(big, tv_tern_values, sizeof(big));
    big[7] = 501;
    st = es_run_blob(tv_tern_blob, (uint32_t)sizeof(tv_tern_blob), NULL, 0, big, 36, 0u, g_arena,
                     sizeof(g_arena), scores, &pred, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                     NULL, text, sizeof(text));
    CHECK(st == ES_ERR_BAD_INPUT && contains(text, "is 501"));
    st = es_run_blob(tv_tern_blob, 10, NULL, 0, big, 36, 0u, g_arena, sizeof(g_arena), scores, &pred,
                     NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, text, sizeof(text));
    CHECK(st == ES_ERR_MODEL_CRC && contains(text, "content hash"));
}

/* Streaming: the integer delta encoder by hand, and per-window decisions = es_engine_run. */
static es_stream_t g_stream;
static void test_stream_core(void)
{
    static const int32_t thr[2] = {2, 3};
    static const int32_t samples[4][2] = {{0, 0}, {2, -1}, {3, -3}, {-1, 5}};
    int32_t ref[2] = {0, 0};
    uint16_t out[4];
    CHECK(es_delta_encode(2, thr, ref, samples[0], out) == 0);
    CHECK(es_delta_encode(2, thr, ref, samples[1], out) == 1 && out[0] == 0);
    CHECK(es_delta_encode(2, thr, ref, samples[2], out) == 1 && out[0] == 3);
    CHECK(es_delta_encode(2, thr, ref, samples[3], out) == 2 && out[0] == 1 && out[1] == 2);
    CHECK(ref[0] == 0 && ref[1] == 0);

    es_model_t m;
    es_engine_t e;
    es_error_t err;
    es_stream_cfg_t cfg;
    CHECK(es_model_parse(&m, tv_int8_blob, (uint32_t)sizeof(tv_int8_blob), &err) == ES_OK);
    CHECK(es_engine_init(&e, &m, g_arena, sizeof(g_arena), &err) == ES_OK);
    memset(&cfg, 0, sizeof(cfg));
    CHECK(es_stream_start(&g_stream, &e, &cfg, &err) == ES_OK);
    CHECK(g_stream.window == m.timesteps && g_stream.hop == m.timesteps && !g_stream.sliding);
    int64_t scores[3];
    uint32_t decisions = 0;
    for (uint32_t rep = 0; rep < 2; ++rep) {
        uint32_t next = 0;
        for (uint32_t t = 0; t < m.timesteps; ++t) {
            uint16_t idx[64];
            uint16_t n = 0;
            es_decision_t d;
            bool decided = false;
            while (next < NELEM(tv_int8_events) && (tv_int8_events[next] >> 16) == t && n < 64u) {
                idx[n++] = (uint16_t)(tv_int8_events[next++] & 0xFFFFu);
            }
            CHECK(es_stream_step(&g_stream, idx, n, NULL, NULL, scores, &d, &decided) == ES_OK);
            CHECK(decided == (t + 1u == m.timesteps));
            if (decided) {
                CHECK(d.index == decisions && d.end_step == (rep + 1u) * m.timesteps - 1u);
                CHECK(d.prediction == TV_INT8_PREDICTION);
                CHECK(memcmp(scores, tv_int8_scores, sizeof(scores)) == 0);
                decisions++;
            }
        }
    }
    CHECK(decisions == 2);
    /* a hop beyond the window, and raw samples for a model that is not 2 x channels wide */
    cfg.window = 4;
    cfg.hop = 5;
    CHECK(es_stream_start(&g_stream, &e, &cfg, &err) == ES_ERR_BAD_INPUT);
    memset(&cfg, 0, sizeof(cfg));
    cfg.raw = true;
    cfg.channels = 1;
    cfg.thresholds = thr;
    CHECK(es_stream_start(&g_stream, &e, &cfg, &err) == ES_ERR_BAD_INPUT);
}

int main(void)
{
    test_crc32();
    test_arith();
    test_lif();
    test_lif_fast_equals_general();
    test_parser();
    test_int8_run();
    test_ternary_run();
    test_stream_core();
    printf("%u passed, %u failed\n", g_pass, g_fail);
    return g_fail == 0u ? 0 : 1;
}
