/*
 * EdgeSpike core: flat, ctypes-friendly entry points (host shared library, QEMU runner).
 *
 * es_runner.c is part of es_core (plain C99, no I/O, no malloc); the host port exports these
 * functions from build/host/libedgespike_host.so and the QEMU runner calls them directly.
 * The prototypes below are the interface; this comment says how the buffers are laid out.
 *
 * Return value: an es_status_t (0 = ES_OK; the protocol's ErrorCode numbers otherwise) with
 * a NUL-terminated reason in err_text (err_len bytes; may be NULL).
 *
 * Buffers (N = sum of layer sizes, L = layers, O = output size, T = timesteps; "optional"
 * means NULL is allowed and skips that output):
 *   arena      es_arena_bytes_for_blob(blob) bytes, 8-byte aligned.
 *   events     INPUT_SPIKES models: (step << 16) | index, strictly increasing.
 *   values     INPUT_VALUES models: T * input_size, row-major by step; with
 *              input_flags & ES_INPUT_STATIC: input_size values, the same at every step.
 *   scores     O int64 (per input).                 prediction: 1 int32 (per input).
 *   counters   L * 5 uint64 (per input): input_events, synops, neuron_updates, spikes, cycles.
 *   raster     optional, T * N bytes (per input): layer by layer, each T x size, 0/1.
 *   final_u/v/th optional, N int32 each (per input): state after the last step (th: 0 for
 *              layers without an adaptive threshold).
 *   cycles     optional, 1 uint64 (per input): the whole inference, from cycle_fn.
 *   cycle_fn   optional port counter (e.g. SysTick under QEMU -icount); NULL: no cycles.
 * es_run_batch: input i uses events[event_offsets[i] .. event_offsets[i+1]) (spike models;
 * event_offsets has n_inputs + 1 entries) or values + i * T * input_size (value models; i *
 * input_size with ES_INPUT_STATIC);
 * outputs are indexed the same way. The blob is parsed and the arena set up once.
 * *failed_input: the input that failed (n_inputs if the blob itself failed).
 *
 * Parse once, run many (the host simulator, threads): es_parse_blob parses and checks a blob
 * into a caller buffer of es_parsed_model_bytes() bytes (8-byte aligned; the blob must
 * outlive it); es_run_parsed runs a batch on it exactly as es_run_batch does, only reading
 * the parsed model, so several threads may run on one parsed model, each with its own arena.
 *
 * es_blob_info fills info with: [0] input_size, [1] input_kind, [2] timesteps, [3] decoding,
 * [4] n_layers, [5] arena bytes, [6] output size, [7..7+L) layer sizes; returns the status.
 */
#ifndef ES_RUNNER_H
#define ES_RUNNER_H

#include "es_engine.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ES_CORE_VERSION 0x000100u /* 0.1.0 */
#define ES_RUNNER_COUNTERS 5u     /* uint64 counters per layer in the flat outputs */
#define ES_INPUT_STATIC 0x1u      /* input_flags: one step of values, used at every step */

uint32_t es_core_version(void);

uint32_t es_arena_bytes_for_blob(const uint8_t *blob, uint32_t len);

int32_t es_blob_info(const uint8_t *blob, uint32_t len, uint32_t *info, uint32_t info_len);

size_t es_parsed_model_bytes(void);

int32_t es_parse_blob(void *model, uint32_t model_bytes, const uint8_t *blob, uint32_t len,
                      char *err_text, uint32_t err_len);

int32_t es_run_parsed(const void *model, uint32_t n_inputs,
                      const uint32_t *events, const uint32_t *event_offsets,
                      const int32_t *values, uint32_t input_flags,
                      void *arena, uint32_t arena_bytes,
                      int64_t *scores, int32_t *predictions, uint64_t *counters,
                      uint8_t *rasters, int32_t *final_u, int32_t *final_v, int32_t *final_th,
                      uint64_t *cycles, es_cycle_fn cycle_fn, void *cycle_ctx,
                      uint32_t *failed_input, char *err_text, uint32_t err_len);

int32_t es_run_blob(const uint8_t *blob, uint32_t len,
                    const uint32_t *events, uint32_t n_events,
                    const int32_t *values, uint32_t n_values, uint32_t input_flags,
                    void *arena, uint32_t arena_bytes,
                    int64_t *scores, int32_t *prediction, uint64_t *counters,
                    uint8_t *raster, int32_t *final_u, int32_t *final_v, int32_t *final_th,
                    uint64_t *cycles, es_cycle_fn cycle_fn, void *cycle_ctx,
                    char *err_text, uint32_t err_len);

int32_t es_run_batch(const uint8_t *blob, uint32_t len, uint32_t n_inputs,
                     const uint32_t *events, const uint32_t *event_offsets,
                     const int32_t *values, uint32_t input_flags,
                     void *arena, uint32_t arena_bytes,
                     int64_t *scores, int32_t *predictions, uint64_t *counters,
                     uint8_t *rasters, int32_t *final_u, int32_t *final_v, int32_t *final_th,
                     uint64_t *cycles, es_cycle_fn cycle_fn, void *cycle_ctx,
                     uint32_t *failed_input, char *err_text, uint32_t err_len);

#ifdef __cplusplus
}
#endif
#endif /* ES_RUNNER_H */
