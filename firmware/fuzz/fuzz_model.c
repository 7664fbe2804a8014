/*
 * libFuzzer harness (b): the model parser followed by one inference.
 *
 * Input: a 2-byte little-endian length L, L bytes of blob body (a serialized Model without
 * its hash field), then the inference input. The harness appends the content hash field, so
 * mutations reach the parser instead of dying at the CRC; with bit 15 of L set the L & 0x7FFF
 * bytes are the whole blob, taken as they are (the hash checks). tests/test_fuzz.py turns each
 * corpus file into the same blob for its C-versus-SDK verdict check. Seeds
 * (gen_seeds.py): protocol/vectors/model_small.bin and SDK-built models that reach every
 * field, each with an input.
 *
 * A blob the parser accepts is run once on an input built from the remaining bytes: events
 * (sorted, in range) for spike models, values (within input_max_abs) for direct input; an
 * input whose first byte is 0xFF is passed raw instead, to reach the input checks. Timesteps
 * are capped at ES_FUZZ_MAX_STEPS to keep one execution short.
 *
 * Checked besides AddressSanitizer and UBSan: a valid input is accepted; the prediction is
 * an output neuron; a second run on the same input gives the same scores and counters (the
 * engine's reset leaves nothing behind); an arena the model does not fit is refused.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es_engine.h"

#define ES_FUZZ_MAX_STEPS 32u
#define ES_FUZZ_MAX_BLOB 65536u
#define ES_FUZZ_ARENA 262144u
#define ES_FUZZ_MAX_ITEMS (ES_FUZZ_MAX_STEPS * ES_MAX_LAYER_SIZE)

static uint8_t blob[ES_FUZZ_MAX_BLOB + 6u];
static uint64_t arena[ES_FUZZ_ARENA / 8u];
static uint32_t events[ES_FUZZ_MAX_ITEMS];
static int32_t values[ES_FUZZ_MAX_ITEMS];
static int64_t scores[2][ES_MAX_LAYER_SIZE];
static uint32_t spikes[2][1024];

static void fail(const char *what, const es_error_t *err)
{
    fprintf(stderr, "fuzz_model: %s (%s)\n", what, err != NULL ? err->text : "");
    abort();
}

/* The inference input from bytes p[0..n); returns whether it is valid by construction. */
static int build_input(const es_model_t *m, const uint8_t *p, size_t n, es_input_t *in)
{
    const uint32_t steps = m->timesteps, width = m->input_size;
    const uint32_t total = steps * width;
    memset(in, 0, sizeof(*in));
    const int raw = n > 0u && p[0] == 0xFFu;
    if (raw) {
        p++, n--;
    }
    if (m->input_kind == ES_INPUT_SPIKES) {
        uint32_t k = 0;
        if (raw) {
            for (; k < ES_FUZZ_MAX_ITEMS && 4u * k + 3u < n; ++k) {
                events[k] = (uint32_t)p[4u * k] | ((uint32_t)p[4u * k + 1u] << 8) |
                            ((uint32_t)p[4u * k + 2u] << 16) | ((uint32_t)p[4u * k + 3u] << 24);
            }
        } else {
            /* each byte skips that many (step, index) cells, then fires one: sorted, unique */
            uint32_t cell = 0;
            for (size_t i = 0; i < n && k < ES_FUZZ_MAX_ITEMS; ++i) {
                cell += p[i];
                if (cell >= total) {
                    break;
                }
                events[k++] = ((cell / width) << 16) | (cell % width);
                cell++;
            }
        }
        in->events = events;
        in->n_events = k;
    } else {
        const int32_t bound = (int32_t)m->input_max_abs;
        for (uint32_t k = 0; k < total; ++k) {
            int32_t v = 0;
            if (2u * k + 1u < n) {
                v = (int16_t)((uint16_t)p[2u * k] | ((uint16_t)p[2u * k + 1u] << 8));
            }
            if (!raw) {
                v = v > bound ? bound : v < -bound ? -bound : v;
            } else if (4u * k + 3u < n) {
                v = (int32_t)((uint32_t)p[4u * k] | ((uint32_t)p[4u * k + 1u] << 8) |
                              ((uint32_t)p[4u * k + 2u] << 16) | ((uint32_t)p[4u * k + 3u] << 24));
            }
            values[k] = v;
        }
        in->values = values;
        in->n_values = raw && n / 4u < total ? (uint32_t)(n / 4u) : total;
    }
    return !raw;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2u) {
        return 0;
    }
    const int as_is = (data[1] & 0x80u) != 0u; /* bit 15 of L: the body is the whole blob */
    size_t body = (size_t)data[0] | ((size_t)(data[1] & 0x7Fu) << 8);
    data += 2, size -= 2u;
    if (body > size) {
        body = size;
    }
    memcpy(blob, data, body);
    size_t len = body;
    if (!as_is) {
        const uint32_t crc = es_crc32(0, blob, body);
        blob[len++] = 0xC5u;
        blob[len++] = 0x3Eu;
        for (int i = 0; i < 4; ++i) {
            blob[len++] = (uint8_t)(crc >> (8 * i));
        }
    }

    es_model_t m;
    es_error_t err;
    if (es_model_parse(&m, blob, (uint32_t)len, &err) != ES_OK) {
        if (err.code == ES_OK || err.text[0] == '\0') {
            fail("a refused blob without a code and a reason", &err);
        }
        return 0;
    }
    if (m.timesteps > ES_FUZZ_MAX_STEPS) {
        m.timesteps = (uint16_t)ES_FUZZ_MAX_STEPS;
    }
    es_engine_t e;
    const uint32_t need = es_engine_arena_bytes(&m);
    if (need > sizeof(arena)) {
        if (es_engine_init(&e, &m, arena, (uint32_t)sizeof(arena), &err) == ES_OK) {
            fail("es_engine_init accepted an arena the model does not fit", &err);
        }
        return 0;
    }
    if (need > 0u && es_engine_init(&e, &m, arena, need - 1u, &err) == ES_OK) {
        fail("es_engine_init accepted an arena one byte short", &err);
    }
    if (es_engine_init(&e, &m, arena, need, &err) != ES_OK) {
        fail("es_engine_init refused an arena of es_engine_arena_bytes", &err);
    }

    es_input_t in;
    const int valid = build_input(&m, data + body, size - body, &in);
    const uint16_t outputs = m.layers[m.n_layers - 1u].size;
    es_result_t out[2];
    es_status_t st[2];
    for (int r = 0; r < 2; ++r) {
        memset(&out[r], 0, sizeof(out[r]));
        out[r].scores = scores[r];
        out[r].spike_events = spikes[r];
        out[r].spike_capacity = r == 0 ? 1024u : 7u; /* the second run also truncates */
        st[r] = es_engine_run(&e, &in, &out[r], &err);
    }
    if (st[0] != st[1]) {
        fail("two runs on the same input gave different statuses", &err);
    }
    if (st[0] != ES_OK) {
        if (valid) {
            fail("a valid input was refused", &err);
        }
        return 0;
    }
    if (out[0].n_scores != outputs || out[0].prediction < 0 || out[0].prediction >= outputs) {
        fail("scores or prediction outside the output layer", NULL);
    }
    if (out[0].prediction != out[1].prediction ||
        memcmp(scores[0], scores[1], sizeof(int64_t) * outputs) != 0) {
        fail("two runs on the same input gave different scores", NULL);
    }
    for (uint8_t l = 0; l < m.n_layers; ++l) {
        const es_counters_t *a = &out[0].layers[l], *b = &out[1].layers[l];
        if (a->input_events != b->input_events || a->synops != b->synops ||
            a->neuron_updates != b->neuron_updates || a->spikes != b->spikes) {
            fail("two runs on the same input gave different counters", NULL);
        }
    }
    const uint32_t recorded = out[0].n_spike_events < 7u ? out[0].n_spike_events : 7u;
    if (out[1].n_spike_events > 7u ||
        memcmp(spikes[0], spikes[1], sizeof(uint32_t) * recorded) != 0) {
        fail("spike recording past its capacity, or different spikes", NULL);
    }
    return 0;
}
