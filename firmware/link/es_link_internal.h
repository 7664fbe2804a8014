/*
 * Inside the link (not for ports): what es_link.c (framing, dispatch, hello/stats/reset),
 * es_link_upload.c, es_link_run.c and es_link_stream.c share. See es_link.h.
 */
#ifndef ES_LINK_INTERNAL_H
#define ES_LINK_INTERNAL_H

#include <string.h>

#include "es_link.h"

/* Protocol error codes beyond the core's es_status_t (same numbers as edgespike.proto). */
#define ES_ERR_STREAM_GAP ((es_status_t)edgespike_ErrorCode_ERR_STREAM_GAP)
#define ES_ERR_NO_CREDIT ((es_status_t)edgespike_ErrorCode_ERR_NO_CREDIT)
#define ES_ERR_NOT_STREAMING ((es_status_t)edgespike_ErrorCode_ERR_NOT_STREAMING)

/* ---- Answers (es_link.c) ------------------------------------------------------------------ */
/* Encode l->resp and send it as one frame. */
void es_link_send_resp(es_link_t *l);
/* Send an Error frame (counted in Stats.errors_sent). */
void es_link_send_error(es_link_t *l, uint32_t seq, es_status_t code, const char *text,
                        uint32_t detail);
/* Send the error the engine reported in l->err (or st when it left none). */
void es_link_send_engine_error(es_link_t *l, uint32_t seq, es_status_t st);
void es_link_send_ack(es_link_t *l, uint32_t seq, uint32_t value);

static inline void es_link_clear_err(es_link_t *l)
{
    memset(&l->err, 0, sizeof(l->err));
}

/* The port's clock (cycle_source units), 0 without one. */
static inline uint64_t es_link_now(const es_link_t *l)
{
    return l->port.cycles != NULL ? l->port.cycles(l->port.ctx) : 0u;
}

/* ---- Request handlers ---------------------------------------------------------------------- */
/* es_link_upload.c: ModelBegin / ModelChunk / ModelCommit into the staging slot. */
void es_link_on_model_begin(es_link_t *l, uint32_t seq, const edgespike_ModelBegin *b);
void es_link_on_model_chunk(es_link_t *l, uint32_t seq, const edgespike_ModelChunk *c);
void es_link_on_model_commit(es_link_t *l, uint32_t seq);
/* es_link_run.c: one inference. */
void es_link_on_run(es_link_t *l, uint32_t seq, const edgespike_Run *r);
/* es_link_stream.c: streaming (FRAMING.md "Streaming"). */
void es_link_on_stream_start(es_link_t *l, uint32_t seq, const edgespike_StreamStart *q);
void es_link_on_event_batch(es_link_t *l, uint32_t seq, const edgespike_EventBatch *b);
void es_link_on_stream_stop(es_link_t *l, uint32_t seq);
/* End the stream (queued input is dropped). */
void es_link_stream_close(es_link_t *l);
/* End an open stream for another reason than StreamStop: a final OutputBatch, counted. */
void es_link_stream_abort(es_link_t *l);

#endif /* ES_LINK_INTERNAL_H */
