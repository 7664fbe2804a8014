/*
 * hello_spikes: the smallest complete EdgeSpike application. It classifies one input compiled
 * into the image with a model compiled into the image, and prints what it found.
 *
 *   model.h   edgespike export MODEL --c model.h --input INPUT   (the blob + one input)
 *   board.h   two functions your board provides: print a line, stop (board_mps2_an386.c:
 *             QEMU's Cortex-M4 through semihosting; on your board: a UART and a loop)
 *
 * Everything else is the runtime's public API (edgespike.h): parse the model in place, ask
 * the RAM it needs, bind an arena, run, read scores and counters. No printf, no malloc.
 */
#include <stddef.h>
#include <stdint.h>

#include "board.h"
#include "edgespike.h"
#include "model.h"

static es_model_t g_model;                            /* a view of model_data (in flash) */
static es_engine_t g_engine;                          /* run state: pointers into g_arena */
static uint64_t g_arena[(MODEL_ARENA_BYTES + 7u) / 8u]; /* the model's RAM, 8-byte aligned */
static int64_t g_scores[MODEL_OUTPUT_SIZE];

/* ---- tiny output helpers (no printf: it would pull kilobytes of libc into the image) ------ */
static char g_line[160];
static size_t g_len;

static void put_str(const char *s)
{
    while (*s != '\0' && g_len + 1u < sizeof(g_line)) {
        g_line[g_len++] = *s++;
    }
}

static void put_u64(uint64_t v)
{
    char digits[20];
    int n = 0;
    do {
        digits[n++] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v != 0u);
    while (n > 0 && g_len + 1u < sizeof(g_line)) {
        g_line[g_len++] = digits[--n];
    }
}

static void put_i64(int64_t v)
{
    if (v < 0) {
        put_str("-");
        put_u64(0u - (uint64_t)v);
    } else {
        put_u64((uint64_t)v);
    }
}

static void put_hex(uint32_t v)
{
    static const char hex[] = "0123456789abcdef";
    put_str("0x");
    for (int shift = 28; shift >= 0; shift -= 4) {
        char c[2] = {hex[(v >> shift) & 0xFu], '\0'};
        put_str(c);
    }
}

static void end_line(void)
{
    g_line[g_len++] = '\n';
    g_line[g_len] = '\0';
    board_print(g_line);
    g_len = 0;
}

static int fail(const char *what, const es_error_t *err)
{
    put_str("hello_spikes: ");
    put_str(what);
    put_str(" failed: ");
    put_str(es_status_name(err->code));
    put_str(": ");
    put_str(err->text);
    end_line();
    return 1;
}

static int run(void)
{
    es_error_t err;

    /* 1. Load the model from flash, in place: es_model_parse validates it and keeps pointers
     *    into model_data (nothing is copied). */
    if (es_model_parse(&g_model, model_data, MODEL_SIZE, &err) != ES_OK) {
        return fail("es_model_parse", &err);
    }
    const uint8_t *weights = g_model.layers[0].w.data;
    put_str("model: ");
    put_u64(MODEL_SIZE);
    put_str(" bytes at ");
    put_hex((uint32_t)(uintptr_t)model_data);
    put_str(", hash ");
    put_hex(g_model.crc32);
    put_str(", weights read in place: ");
    put_str(weights >= model_data && weights < model_data + MODEL_SIZE ? "yes" : "no");
    end_line();

    /* 2. The RAM it needs, known before anything runs. */
    const uint32_t need = es_engine_arena_bytes(&g_model);
    put_str("arena: ");
    put_u64(need);
    put_str(" bytes needed, ");
    put_u64(sizeof(g_arena));
    put_str(" provided");
    end_line();
    if (need > sizeof(g_arena)) {
        put_str("hello_spikes: the arena is too small (model.h and the blob disagree?)");
        end_line();
        return 1;
    }

    /* 3. Bind the engine to the model and the arena. */
    if (es_engine_init(&g_engine, &g_model, g_arena, sizeof(g_arena), &err) != ES_OK) {
        return fail("es_engine_init", &err);
    }

    /* 4. Run one inference on the compiled-in input. */
    es_input_t in = {0};
#if MODEL_INPUT_VALUES
    in.values = model_input_values;
    in.n_values = MODEL_INPUT_COUNT;
    in.static_values = MODEL_INPUT_STATIC != 0;
#else
    in.events = model_input_events;
    in.n_events = MODEL_INPUT_COUNT;
#endif
    es_result_t out = {0};
    out.scores = g_scores;
    if (es_engine_run(&g_engine, &in, &out, &err) != ES_OK) {
        return fail("es_engine_run", &err);
    }

    /* 5. Read the result: prediction, scores, and what it cost per layer. */
    put_str("prediction: ");
    put_i64(out.prediction);
#if MODEL_HAS_LABELS
    if ((uint32_t)out.prediction < MODEL_LABEL_COUNT) {
        put_str(" \"");
        put_str(model_labels[out.prediction]);
        put_str("\"");
    }
#endif
#if MODEL_INPUT_LABEL >= 0
    put_str(out.prediction == MODEL_INPUT_LABEL ? " (correct)" : " (expected ");
    if (out.prediction != MODEL_INPUT_LABEL) {
        put_i64(MODEL_INPUT_LABEL);
        put_str(")");
    }
#endif
    end_line();
    for (uint32_t k = 0; k < out.n_scores; ++k) { /* 8 a line: "scores FIRST: s s s ..." */
        if (k % 8u == 0u) {
            put_str("scores ");
            put_u64(k);
            put_str(":");
        }
        put_str(" ");
        put_i64(out.scores[k]);
        if (k % 8u == 7u || k + 1u == out.n_scores) {
            end_line();
        }
    }
    for (uint32_t l = 0; l < out.n_layers; ++l) {
        const es_counters_t *c = &out.layers[l];
        put_str("layer ");
        put_u64(l);
        put_str(": input_events ");
        put_u64(c->input_events);
        put_str(" synops ");
        put_u64(c->synops);
        put_str(" neuron_updates ");
        put_u64(c->neuron_updates);
        put_str(" spikes ");
        put_u64(c->spikes);
        end_line();
    }
    return 0;
}

int main(void)
{
    put_str("hello_spikes: EdgeSpike runtime ");
    const uint32_t v = es_core_version();
    put_u64(v >> 16);
    put_str(".");
    put_u64((v >> 8) & 0xFFu);
    put_str(".");
    put_u64(v & 0xFFu);
    end_line();
    const int rc = run();
    board_print(rc == 0 ? "hello_spikes: done\n" : "hello_spikes: FAILED\n");
    board_exit(rc);
    return rc;
}
