/* Chunked model upload into the staging slot, atomic commit (FRAMING.md "Messages"). */
#include "es_link_internal.h"

#include <string.h>

void es_link_on_model_begin(es_link_t *l, uint32_t seq, const edgespike_ModelBegin *b)
{
    /* A new begin abandons any upload in progress; the active model is untouched. */
    l->uploading = false;
    if (b->total_bytes == 0u) {
        l->stats.uploads_rejected++;
        es_link_send_error(l, seq, ES_ERR_MODEL_INVALID, "ModelBegin announces a model of 0 bytes",
                           0);
        return;
    }
    if (b->total_bytes > ES_MODEL_CAPACITY) {
        l->stats.uploads_rejected++;
        es_link_send_error(l, seq, ES_ERR_MODEL_TOO_LARGE,
                           "model larger than the device's model capacity", ES_MODEL_CAPACITY);
        return;
    }
    l->uploading = true;
    l->up_total = b->total_bytes;
    l->up_crc = b->crc32;
    l->up_received = 0;
    es_link_send_ack(l, seq, 0);
}

void es_link_on_model_chunk(es_link_t *l, uint32_t seq, const edgespike_ModelChunk *c)
{
    es_slot_t *s = &l->slots[l->active ^ 1u];
    uint32_t n = c->data.size;
    if (!l->uploading) {
        es_link_send_error(l, seq, ES_ERR_UPLOAD_NOT_STARTED,
                           "ModelChunk without ModelBegin in this session", 0);
        return;
    }
    if (c->offset != l->up_received) {
        es_link_send_error(l, seq, ES_ERR_UPLOAD_OFFSET, "chunk not at the next expected offset",
                           l->up_received);
        return;
    }
    if (n > l->up_total - l->up_received) {
        es_link_send_error(l, seq, ES_ERR_UPLOAD_OFFSET,
                           "chunk runs past the announced total_bytes", l->up_received);
        return;
    }
    memcpy((uint8_t *)s->blob_words + l->up_received, c->data.bytes, n);
    l->up_received += n;
    es_link_send_ack(l, seq, l->up_received);
}

void es_link_on_model_commit(es_link_t *l, uint32_t seq)
{
    uint8_t staging = (uint8_t)(l->active ^ 1u);
    es_slot_t *s = &l->slots[staging];
    const uint8_t *blob = (const uint8_t *)s->blob_words;
    uint32_t need;
    es_status_t st;
    if (!l->uploading) {
        es_link_send_error(l, seq, ES_ERR_UPLOAD_NOT_STARTED,
                           "ModelCommit without ModelBegin in this session", 0);
        return;
    }
    if (l->up_received != l->up_total) {
        es_link_send_error(l, seq, ES_ERR_UPLOAD_INCOMPLETE, "commit before all bytes arrived",
                           l->up_received);
        return;
    }
    /* From here the upload is consumed whatever the outcome. */
    l->uploading = false;
    if (es_crc32(0, blob, l->up_total) != l->up_crc) {
        l->stats.uploads_rejected++;
        es_link_send_error(l, seq, ES_ERR_MODEL_CRC, "blob CRC-32 differs from ModelBegin.crc32",
                           0);
        return;
    }
    es_link_clear_err(l);
    st = es_model_parse(&s->model, blob, l->up_total, &l->err);
    if (st != ES_OK) {
        l->stats.uploads_rejected++;
        es_link_send_engine_error(l, seq, st);
        return;
    }
    if (s->model.n_layers == 0u ||
        s->model.layers[s->model.n_layers - 1u].size > ES_MAX_SCORES) {
        l->stats.uploads_rejected++;
        es_link_send_error(l, seq, ES_ERR_MODEL_TOO_LARGE, "output layer larger than ES_MAX_SCORES",
                           ES_MAX_SCORES);
        return;
    }
    need = es_engine_arena_bytes(&s->model);
    if (need > ES_STATE_CAPACITY) {
        l->stats.uploads_rejected++;
        es_link_send_error(l, seq, ES_ERR_MODEL_TOO_LARGE, "model state exceeds the state arena",
                           need);
        return;
    }
    es_link_clear_err(l);
    st = es_engine_init(&s->engine, &s->model, s->arena_words, ES_STATE_CAPACITY, &l->err);
    if (st != ES_OK) {
        l->stats.uploads_rejected++;
        es_link_send_engine_error(l, seq, st);
        return;
    }
    if (l->port.cycles != NULL) {
        es_engine_set_cycle_counter(&s->engine, l->port.cycles, l->port.ctx,
                                    l->port.cycle_source);
    }
    s->blob_len = l->up_total;
    s->arena_used = need;
    /* Only now, with everything valid, does the new model replace the old one. */
    l->active = staging;
    l->loaded = true;
    l->stats.uploads_committed++;
    es_link_send_ack(l, seq, l->up_total);
}
