/*
 * edgespike.h: the EdgeSpike runtime's public API. Include this header only.
 *
 * The runtime runs an integer spiking neural network (a model blob from `edgespike quantize`)
 * on any C99 target: no I/O, no malloc, no floating point, no global state. The caller owns
 * every byte of memory. The rules it computes are in docs/SEMANTICS.md; the SDK's numpy
 * reference (edgespike.sim.reference) gives the same spikes, scores and counters, bit for bit.
 *
 * Memory
 *   model   the blob, a const array compiled in with `edgespike export MODEL --c model.h`.
 *           It stays in flash: es_model_parse() validates it and keeps pointers into it.
 *           Nothing of it is copied to RAM; it must outlive the model and the engine.
 *   state   one arena of es_engine_arena_bytes(&model) bytes, 8-byte aligned, known before
 *           anything runs (model.h also has it at compile time: MODEL_ARENA_BYTES).
 *   structs es_model_t and es_engine_t (sizeof: a few KB with the default limits), a scores
 *           buffer of one int64_t per output neuron, and the stack (well under 1 KB).
 *
 * Life cycle
 *
 *   #include "edgespike.h"
 *   #include "model.h"                          // edgespike export MODEL --c model.h
 *
 *   static es_model_t model;
 *   static es_engine_t engine;
 *   static uint64_t arena[(MODEL_ARENA_BYTES + 7) / 8];   // 8-byte aligned
 *   static int64_t scores[MODEL_OUTPUT_SIZE];
 *
 *   es_error_t err;
 *   if (es_model_parse(&model, model_data, MODEL_SIZE, &err) != ES_OK)   // 1. load, in place
 *       fail(err.text);
 *   if (es_engine_arena_bytes(&model) > sizeof arena)                      // 2. its RAM
 *       fail("arena too small");
 *   es_engine_init(&engine, &model, arena, sizeof arena, &err);            // 3. bind
 *
 *   es_input_t in = {0};                                                   // 4. run
 *   in.events = my_events; in.n_events = n;      // spike models: (step << 16) | index, sorted
 *   // values models: in.values = v; in.n_values = timesteps * input_size
 *   //                (or input_size with in.static_values = true: the same at every step)
 *   es_result_t out = {0};
 *   out.scores = scores;
 *   if (es_engine_run(&engine, &in, &out, &err) != ES_OK) fail(err.text);
 *
 *   out.prediction, out.scores[k], out.layers[l].synops ...                // 5. read
 *
 * Every call that can fail returns an es_status_t (ES_OK, or the protocol's ErrorCode number)
 * and fills an es_error_t with a short text and a detail number (a layer, a byte offset, the
 * bytes needed). Nothing is left half done: a model that fails es_model_parse() is not used,
 * an input that fails es_input_check() is not run.
 *
 * Counters (es_result_t.layers[l], docs/SEMANTICS.md "Counters"): input events, synaptic
 * operations, neuron updates and spikes per layer; cycles when the port gives a counter with
 * es_engine_set_cycle_counter() (the DWT's CYCCNT on a Cortex-M3/M4/M7/M33).
 *
 * Limits (compile time; the library and your code must agree: with CMake, set
 * EDGESPIKE_MAX_LAYERS / EDGESPIKE_MAX_LAYER_SIZE and the target passes them on):
 *   ES_MAX_LAYERS      layers per model (default 8)
 *   ES_MAX_LAYER_SIZE  neurons per layer and inputs (default 4096)
 *
 * Build: firmware/core/CMakeLists.txt makes the library `edgespike` (alias
 * edgespike::edgespike), for add_subdirectory(edgespike/firmware/core) or, installed,
 * find_package(edgespike). A complete application: firmware/examples/hello_spikes.
 */
#ifndef EDGESPIKE_H
#define EDGESPIKE_H

#include "es_engine.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EDGESPIKE_VERSION_MAJOR 0
#define EDGESPIKE_VERSION_MINOR 1
#define EDGESPIKE_VERSION_PATCH 0

/* The runtime's version as (major << 16) | (minor << 8) | patch. */
uint32_t es_core_version(void);

/* Output neurons (scores) of a parsed model: the size of its last layer. */
static inline uint16_t es_model_output_size(const es_model_t *m)
{
    return (m != NULL && m->n_layers > 0u) ? m->layers[m->n_layers - 1u].size : 0u;
}

/* The status code's name, e.g. "ES_ERR_MODEL_INVALID" ("ES_ERR_?" for an unknown code). */
const char *es_status_name(es_status_t code);

#ifdef __cplusplus
}
#endif
#endif /* EDGESPIKE_H */
