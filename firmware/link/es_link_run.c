/* Run: one inference on the committed model (FRAMING.md "Messages"). */
#include "es_link_internal.h"

#include <string.h>

void es_link_on_run(es_link_t *l, uint32_t seq, const edgespike_Run *r)
{
    es_slot_t *a = &l->slots[l->active];
    edgespike_RunResult *rr;
    es_input_t in;
    es_result_t out;
    es_status_t st;
    uint8_t i;
    if (!l->loaded) {
        es_link_send_error(l, seq, ES_ERR_NO_MODEL, "no model committed; upload one first", 0);
        return;
    }
    memset(&in, 0, sizeof(in));
    if (a->model.input_kind == ES_INPUT_VALUES) {
        if (r->events_count != 0u) {
            es_link_send_error(l, seq, ES_ERR_BAD_INPUT, "model takes values, Run carries events",
                               0);
            return;
        }
        in.values = r->values;
        in.n_values = r->values_count;
        in.static_values = r->static_input;
    } else {
        if (r->values_count != 0u || r->static_input) {
            es_link_send_error(l, seq, ES_ERR_BAD_INPUT,
                               "model takes events, Run carries values (or static_input)", 0);
            return;
        }
        in.events = r->events;
        in.n_events = r->events_count;
    }
    es_link_clear_err(l);
    st = es_input_check(&a->model, &in, &l->err);
    if (st != ES_OK) {
        es_link_send_engine_error(l, seq, st);
        return;
    }
    /* The engine writes scores and spikes straight into the response message. */
    memset(&l->resp, 0, sizeof(l->resp));
    rr = &l->resp.body.run_result;
    memset(&out, 0, sizeof(out));
    out.scores = rr->scores;
    out.spike_events = r->record_spikes ? rr->output_spikes : NULL;
    out.spike_capacity = r->record_spikes ? ES_LINK_MAX_OUTPUTS : 0u;
    es_link_clear_err(l);
    st = es_engine_run(&a->engine, &in, &out, &l->err);
    if (st != ES_OK) {
        es_link_send_engine_error(l, seq, st);
        return;
    }
    l->stats.runs++;
    l->resp.seq = seq;
    l->resp.which_body = edgespike_Frame_run_result_tag;
    rr->prediction = out.prediction;
    rr->scores_count = out.n_scores <= ES_MAX_SCORES ? out.n_scores : ES_MAX_SCORES;
    rr->layers_count = out.n_layers <= ES_MAX_LAYERS ? out.n_layers : ES_MAX_LAYERS;
    for (i = 0; i < rr->layers_count; i++) {
        rr->layers[i].input_events = out.layers[i].input_events;
        rr->layers[i].synops = out.layers[i].synops;
        rr->layers[i].neuron_updates = out.layers[i].neuron_updates;
        rr->layers[i].spikes = out.layers[i].spikes;
        rr->layers[i].cycles = out.layers[i].cycles;
    }
    rr->cycles = out.cycles;
    rr->cycle_source = (edgespike_CycleSource)(l->port.cycles != NULL ? l->port.cycle_source
                                                                      : ES_CYCLES_NONE);
    if (r->record_spikes) {
        rr->output_spikes_count = out.n_spike_events <= ES_LINK_MAX_OUTPUTS
                                      ? out.n_spike_events
                                      : ES_LINK_MAX_OUTPUTS;
        rr->spikes_truncated = out.spikes_truncated;
    }
    es_link_send_resp(l);
}
