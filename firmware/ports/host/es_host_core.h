/*
 * Host only: the C core with the model parsed once (edgespike.sim.core.CoreModel).
 *
 * es_run_batch (es_runner.h) parses and CRC-checks the blob on every call. Here the caller
 * parses it once into a buffer of es_host_model_bytes() bytes (8-byte aligned) and then runs
 * batches on it, from several threads at once if it likes: es_host_run_batch only reads the
 * parsed model, and each concurrent call needs its own arena. The blob must outlive the
 * parsed model (it points into it). Outputs are laid out exactly as es_run_batch's.
 *
 *   size_t  es_host_model_bytes(void);
 *   int32_t es_host_model_parse(void *model, uint32_t model_bytes, const uint8_t *blob,
 *                               uint32_t len, char *err_text, uint32_t err_len);
 *   int32_t es_host_run_batch(const void *model, uint32_t n_inputs,
 *                             const uint32_t *events, const uint32_t *event_offsets,
 *                             const int32_t *values, uint32_t input_flags,
 *                             void *arena, uint32_t arena_bytes,
 *                             int64_t *scores, int32_t *predictions, uint64_t *counters,
 *                             uint8_t *rasters, int32_t *final_u, int32_t *final_v,
 *                             int32_t *final_th, uint32_t *failed_input,
 *                             char *err_text, uint32_t err_len);
 *
 * Inputs as es_run_batch's: input i uses events[event_offsets[i] .. event_offsets[i + 1]), so a
 * caller may run a slice of a batch by passing a slice of event_offsets with the same events.
 * Return values and error texts as es_run_batch (es_status_t; 0 = ES_OK).
 */
#ifndef ES_HOST_CORE_H
#define ES_HOST_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

size_t es_host_model_bytes(void);

int32_t es_host_model_parse(void *model, uint32_t model_bytes, const uint8_t *blob, uint32_t len,
                            char *err_text, uint32_t err_len);

int32_t es_host_run_batch(const void *model, uint32_t n_inputs,
                          const uint32_t *events, const uint32_t *event_offsets,
                          const int32_t *values, uint32_t input_flags,
                          void *arena, uint32_t arena_bytes,
                          int64_t *scores, int32_t *predictions, uint64_t *counters,
                          uint8_t *rasters, int32_t *final_u, int32_t *final_v, int32_t *final_th,
                          uint32_t *failed_input, char *err_text, uint32_t err_len);

#ifdef __cplusplus
}
#endif
#endif /* ES_HOST_CORE_H */
