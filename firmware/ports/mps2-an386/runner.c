/*
 * edgespike-runner-mps2-an386: run one model blob on a batch of inputs inside QEMU, with no
 * link: model.bin and input.bin are read from QEMU's working directory through semihosting,
 * output.bin is written there, and the exit code says how it went. Byte layouts: RUNNER.md.
 */
#include <string.h>

#include "es_runner.h"
#include "mps2.h"

#define IN_MAGIC 0x31495345u  /* "ESI1" */
#define OUT_MAGIC 0x314F5345u /* "ESO1" */
#define FLAG_RASTER 0x1u
#define FLAG_STATE 0x2u
#define FLAG_STATIC 0x4u /* values inputs: one step, the same at every step */
#define ERR_TEXT 96u

#ifndef ES_RUNNER_INPUT_ITEMS
#define ES_RUNNER_INPUT_ITEMS (128u * 1024u) /* events or values per input */
#endif
#ifndef ES_RUNNER_RASTER_BYTES
#define ES_RUNNER_RASTER_BYTES (512u * 1024u) /* timesteps x neurons */
#endif
#define MAX_NEURONS ((uint32_t)ES_MAX_LAYERS * ES_MAX_LAYER_SIZE)

/* Static buffers: the runner is the only program on the board. */
static uint64_t g_blob[ES_MODEL_CAPACITY / 8u];
static uint64_t g_arena[ES_STATE_CAPACITY / 8u];
static uint32_t g_items[ES_RUNNER_INPUT_ITEMS];
static int64_t g_scores[ES_MAX_LAYER_SIZE];
static uint64_t g_counters[ES_MAX_LAYERS * ES_RUNNER_COUNTERS];
static uint8_t g_raster[ES_RUNNER_RASTER_BYTES];
static int32_t g_u[MAX_NEURONS], g_v[MAX_NEURONS], g_th[MAX_NEURONS];
static uint32_t g_info[7u + ES_MAX_LAYERS];
static char g_err[ERR_TEXT];

static int g_out = -1;

static void put(const void *p, size_t n)
{
    if (n > 0u && es_sh_write(g_out, p, n) != 0) {
        es_sh_write0("runner: cannot write output.bin\n");
        es_sh_exit(2);
    }
}

static void put_u32(uint32_t x)
{
    put(&x, 4); /* Cortex-M4 here is little-endian, as the file format */
}

/* Header of output.bin; written first, and alone when the run fails before any input. */
static void put_header(int32_t status, uint32_t n_inputs, uint32_t flags)
{
    uint32_t i;
    uint32_t neurons = 0;
    put_u32(OUT_MAGIC);
    put(&status, 4);
    put_u32(n_inputs);
    put_u32(flags);
    put_u32(g_info[4]);  /* L */
    put_u32(g_info[6]);  /* O */
    for (i = 0; i < g_info[4] && i < ES_MAX_LAYERS; i++) {
        neurons += g_info[7u + i];
    }
    put_u32(neurons);    /* N */
    put_u32(g_info[2]);  /* T */
    put(g_err, ERR_TEXT);
}

static int fail(int32_t status, const char *text, int code)
{
    size_t n = strlen(text);
    memset(g_err, 0, sizeof(g_err));
    memcpy(g_err, text, n < ERR_TEXT - 1u ? n : ERR_TEXT - 1u);
    if (g_out >= 0) {
        put_header(status, 0, 0);
        es_sh_close(g_out);
    }
    es_sh_write0("runner: ");
    es_sh_write0(g_err);
    es_sh_write0("\n");
    return code;
}

static int read_exact(int fd, void *p, size_t n)
{
    return es_sh_read(fd, p, n) == 0 ? 0 : -1;
}

int main(void)
{
    int fm, fi;
    long blob_len;
    uint32_t hdr[4], kind, n_inputs, flags, i, neurons = 0, T, L, O;
    int32_t st;
    int any_failed = 0;

    es_systick_init();
    g_out = es_sh_open("output.bin", 5);
    if (g_out < 0) {
        es_sh_write0("runner: cannot create output.bin\n");
        return 2;
    }
    fm = es_sh_open("model.bin", 1);
    if (fm < 0) {
        return fail(ES_ERR_INTERNAL, "cannot open model.bin", 2);
    }
    blob_len = es_sh_flen(fm);
    if (blob_len <= 0 || (unsigned long)blob_len > ES_MODEL_CAPACITY) {
        return fail(ES_ERR_MODEL_TOO_LARGE, "model.bin is empty or larger than ES_MODEL_CAPACITY", 3);
    }
    if (read_exact(fm, g_blob, (size_t)blob_len) != 0) {
        return fail(ES_ERR_INTERNAL, "cannot read model.bin", 2);
    }
    es_sh_close(fm);

    memset(g_err, 0, sizeof(g_err));
    st = es_blob_info((const uint8_t *)g_blob, (uint32_t)blob_len, g_info,
                      (uint32_t)(sizeof(g_info) / sizeof(g_info[0])));
    if (st != ES_OK) {
        /* Let the engine say why: es_run_blob reports the parse error text. */
        (void)es_run_blob((const uint8_t *)g_blob, (uint32_t)blob_len, NULL, 0, NULL, 0, 0u, g_arena,
                          sizeof(g_arena), g_scores, &st, g_counters, NULL, NULL, NULL, NULL,
                          NULL, NULL, NULL, g_err, ERR_TEXT);
        memset(g_info, 0, sizeof(g_info));
        put_header(st, 0, 0);
        es_sh_close(g_out);
        es_sh_write0("runner: model rejected: ");
        es_sh_write0(g_err);
        es_sh_write0("\n");
        return 2;
    }
    T = g_info[2];
    L = g_info[4];
    O = g_info[6];
    for (i = 0; i < L; i++) {
        neurons += g_info[7u + i];
    }
    if (g_info[5] > sizeof(g_arena)) {
        return fail(ES_ERR_MODEL_TOO_LARGE, "model state exceeds ES_STATE_CAPACITY", 3);
    }

    fi = es_sh_open("input.bin", 1);
    if (fi < 0 || read_exact(fi, hdr, sizeof(hdr)) != 0 || hdr[0] != IN_MAGIC) {
        return fail(ES_ERR_BAD_INPUT, "input.bin missing or not an ESI1 file", 2);
    }
    kind = hdr[1];
    n_inputs = hdr[2];
    flags = hdr[3];
    if (kind != g_info[1]) {
        return fail(ES_ERR_BAD_INPUT, "input.bin kind differs from the model's input kind", 2);
    }
    if ((flags & FLAG_RASTER) && (uint64_t)T * neurons > sizeof(g_raster)) {
        return fail(ES_ERR_MODEL_TOO_LARGE, "raster (T x N) exceeds ES_RUNNER_RASTER_BYTES", 3);
    }
    memset(g_err, 0, sizeof(g_err));
    put_header(ES_OK, n_inputs, flags);

    for (i = 0; i < n_inputs; i++) {
        uint32_t n;
        uint64_t cycles = 0;
        int32_t pred = -1;
        if (read_exact(fi, &n, 4) != 0 || n > ES_RUNNER_INPUT_ITEMS ||
            read_exact(fi, g_items, (size_t)n * 4u) != 0) {
            /* The rest of the file cannot be trusted: stop here, the host sees fewer records. */
            es_sh_write0("runner: input.bin truncated or an input exceeds ES_RUNNER_INPUT_ITEMS\n");
            es_sh_close(fi);
            es_sh_close(g_out);
            return 2;
        }
        memset(g_scores, 0, (size_t)O * 8u);
        memset(g_counters, 0, (size_t)L * ES_RUNNER_COUNTERS * 8u);
        st = es_run_blob((const uint8_t *)g_blob, (uint32_t)blob_len,
                         kind == 0u ? g_items : NULL, kind == 0u ? n : 0u,
                         kind == 1u ? (const int32_t *)g_items : NULL, kind == 1u ? n : 0u,
                         (flags & FLAG_STATIC) ? ES_INPUT_STATIC : 0u,
                         g_arena, sizeof(g_arena), g_scores, &pred, g_counters,
                         (flags & FLAG_RASTER) ? g_raster : NULL,
                         (flags & FLAG_STATE) ? g_u : NULL, (flags & FLAG_STATE) ? g_v : NULL,
                         (flags & FLAG_STATE) ? g_th : NULL, &cycles, es_systick_cycles, NULL,
                         g_err, ERR_TEXT);
        if (st != ES_OK) {
            any_failed = 1;
            pred = -1;
            memset(g_scores, 0, (size_t)O * 8u);
            memset(g_counters, 0, (size_t)L * ES_RUNNER_COUNTERS * 8u);
            memset(g_raster, 0, (flags & FLAG_RASTER) ? (size_t)T * neurons : 0u);
            memset(g_u, 0, (flags & FLAG_STATE) ? (size_t)neurons * 4u : 0u);
            memset(g_v, 0, (flags & FLAG_STATE) ? (size_t)neurons * 4u : 0u);
            memset(g_th, 0, (flags & FLAG_STATE) ? (size_t)neurons * 4u : 0u);
            cycles = 0;
        }
        put(&st, 4);
        put(&pred, 4);
        put(g_scores, (size_t)O * 8u);
        put(g_counters, (size_t)L * ES_RUNNER_COUNTERS * 8u);
        put(&cycles, 8);
        if (flags & FLAG_RASTER) {
            put(g_raster, (size_t)T * neurons);
        }
        if (flags & FLAG_STATE) {
            put(g_u, (size_t)neurons * 4u);
            put(g_v, (size_t)neurons * 4u);
            put(g_th, (size_t)neurons * 4u);
        }
    }
    es_sh_close(fi);
    es_sh_close(g_out);
    return any_failed ? 1 : 0;
}
