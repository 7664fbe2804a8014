/*
 * The device side of the link: framing + protocol dispatch over nanopb + chunked model upload.
 *
 * All state lives in one es_link_t the port owns (usually a static object in the port's
 * main.c): receive and transmit buffers, the request and response messages, two model slots
 * (the ACTIVE one that runs, and a STAGING one an upload writes into) each with its own state
 * arena, upload progress and statistics. Nothing is allocated at run time.
 *
 * The port supplies a byte sink, an optional cycle counter and a few facts about the board,
 * then feeds received bytes to es_link_rx(). Every complete request frame is answered at
 * once, synchronously, through the byte sink, in the request's link session (a repeated
 * request of a session is dropped, a new session ends what the last one left open). Every
 * answer fits ES_MAX_FRAME_BYTES at its worst-case encoding. See protocol/FRAMING.md.
 */
#ifndef ES_LINK_H
#define ES_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edgespike.pb.h"
#include "es_engine.h"
#include "es_frame.h"
#include "es_stream.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 2: link sessions (Frame.session, FRAMING.md "Sessions"); a device of protocol 2 still
 * serves hosts of protocol 1 (their frames carry session 0). */
#define ES_PROTOCOL_VERSION 3u /* 2: sessions; 3: Run.static_input */
#ifndef ES_FIRMWARE_VERSION
#define ES_FIRMWARE_VERSION "0.1.0"
#endif

/* ---- Compile-time limits (a port may lower or raise the first three with -D) -------------- */
/* Largest decoded payload (serialized Frame, CRC excluded), bytes. */
#ifndef ES_MAX_FRAME_BYTES
#define ES_MAX_FRAME_BYTES 16384u
#endif
/* Largest model blob, bytes (the device holds two: active + staging). */
#ifndef ES_MODEL_CAPACITY
#define ES_MODEL_CAPACITY 65536u
#endif
/* Neuron state arena per model slot, bytes (two of them). */
#ifndef ES_STATE_CAPACITY
#define ES_STATE_CAPACITY 16384u
#endif
/* These follow protocol/edgespike.options (nanopb arrays); checked at compile time below. */
#define ES_MAX_CHUNK_BYTES 4096u
#define ES_MAX_INPUT_ITEMS 4096u
#define ES_MAX_SCORES 256u
#define ES_MAX_OUTPUT_EVENTS 1024u
/* Streaming (FRAMING.md "Streaming"): the device queues at most ES_STREAM_SLOTS EventBatches
 * (the host's credit), each of at most ES_STREAM_BATCH_STEPS steps and ES_STREAM_BATCH_ITEMS
 * items; an OutputBatch carries at most ES_STREAM_MAX_DECISIONS decisions. */
#ifndef ES_STREAM_SLOTS
#define ES_STREAM_SLOTS 8u
#endif
#define ES_STREAM_BATCH_STEPS 256u
#define ES_STREAM_BATCH_ITEMS 1024u
#define ES_STREAM_MAX_DECISIONS 4u
/* What every answer must fit: ES_MAX_FRAME_BYTES, at the worst-case encoding of every field
 * (varints of 5 bytes for 32 bits and 10 for 64, whatever the model and its values), so that
 * no answer is ever too large for the frame buffer (FRAMING.md "Limits"). */
#define ES_PB_LEN 3u /* length prefix of a field inside a frame (< 2^21 bytes) */
/* Frame: seq, session, the body's tag (2 bytes above field 15) and length. */
#define ES_WC_FRAME (1u + 5u + 2u + 4u + 2u + ES_PB_LEN)
/* RunResult without its output_spikes: prediction, scores, layers (each LayerStats: tag,
 * length, three uint32 and two uint64), cycles, cycle_source, spikes_truncated, and the
 * output_spikes tag and length. */
#define ES_WC_LAYER_STATS (2u + 3u * 6u + 2u * 11u)
#define ES_WC_RUN_RESULT                                                                      \
    (6u + 1u + ES_PB_LEN + 10u * ES_MAX_SCORES + ES_MAX_LAYERS * ES_WC_LAYER_STATS + 11u +    \
     6u + 2u + 1u + ES_PB_LEN)
/* Output spike events an answer carries (DeviceInfo.max_outputs): 5 bytes each at worst
 * ((step << 16) | index with step >= 4096), at most ES_MAX_OUTPUT_EVENTS. */
#define ES_WC_OUTPUTS ((ES_MAX_FRAME_BYTES - ES_WC_FRAME - ES_WC_RUN_RESULT) / 5u)
#define ES_LINK_MAX_OUTPUTS (ES_WC_OUTPUTS < ES_MAX_OUTPUT_EVENTS ? ES_WC_OUTPUTS                 \
                                                                  : ES_MAX_OUTPUT_EVENTS)
/* OutputBatch without decisions and spikes (16 scalar fields; 16..18 have 2-byte tags) and
 * one Decision (tag, length, three uint32, ES_MAX_SCORES sint64 and three uint64). */
#define ES_WC_OUTPUT_BATCH (11u * 6u + 11u + 2u + 2u * 7u + 3u + 1u + ES_PB_LEN)
#define ES_WC_DECISION (1u + ES_PB_LEN + 3u * 6u + 1u + ES_PB_LEN + 10u * ES_MAX_SCORES + 3u * 11u)
/* Decisions one OutputBatch carries beside ES_LINK_MAX_OUTPUTS spikes (1..4). */
#define ES_WC_DECISIONS                                                                       \
    ((ES_MAX_FRAME_BYTES - ES_WC_FRAME - ES_WC_OUTPUT_BATCH - 5u * ES_LINK_MAX_OUTPUTS) /      \
     ES_WC_DECISION)
#define ES_LINK_STREAM_DECISIONS                                                              \
    (ES_WC_DECISIONS < ES_STREAM_MAX_DECISIONS ? ES_WC_DECISIONS : ES_STREAM_MAX_DECISIONS)
/* Default stall timeout: no EventBatch for this long with nothing queued ends a stream. */
#define ES_STREAM_IDLE_TIMEOUT_MS 2000u
/* es_link_poll's answer when nothing is scheduled: sleep until bytes arrive. */
#define ES_LINK_IDLE 0xFFFFFFFFu

/* ---- What the port provides --------------------------------------------------------------- */
typedef struct {
    es_write_fn write;              /* send bytes (blocking); required */
    es_cycle_fn cycles;             /* free-running cycle counter, or NULL */
    es_cycle_source_t cycle_source; /* what cycles counts */
    void *ctx;                      /* passed to write and cycles */
    const char *board;              /* "mps2-an386", "host" */
    const char *core;               /* "cortex-m4", "x86_64" */
    uint32_t clock_hz;
    uint32_t flash_bytes;           /* firmware image size (text + data), 0 if unknown */
    uint32_t ram_bytes;             /* static RAM (data + bss), 0 if unknown */
    /* (added for streaming) cycles counter units per microsecond: 1000 when it counts ns
     * (host, QEMU -icount shift=0); 0: no clock, streams run free (no pacing, no stall) */
    uint32_t cycles_per_us;
    /* (added for flashing) the image's GNU build id (DeviceInfo.build_id), or NULL / 0 */
    const uint8_t *build_id;
    uint32_t build_id_len;
} es_port_t;

/* One queued EventBatch: its steps' input, copied out of the request. */
typedef struct {
    uint32_t batch_seq;
    uint32_t n_steps;
    uint32_t n_items;
    uint64_t arrival;      /* device clock when it arrived */
    uint64_t host_time_us; /* EventBatch.host_time_us */
    uint32_t items[ES_STREAM_BATCH_ITEMS]; /* events, or values / samples as int32 bits */
} es_batch_t;

/* An open stream: queue, pacing, sequence numbers, the OutputBatch being filled. */
typedef struct {
    bool open;
    bool free_run;
    uint32_t session;        /* session of the StreamStart: every OutputBatch carries it */
    bool record_spikes;
    uint32_t req_seq;        /* seq of the StreamStart: unsolicited OutputBatches carry it */
    uint32_t next_batch_seq; /* the batch_seq expected next */
    uint32_t next_step;      /* first_step expected next */
    uint32_t acked_seq;      /* every batch up to this one has run */
    uint32_t out_seq;        /* OutputBatches sent */
    uint32_t items_received;
    uint32_t batches_received;
    uint32_t stalls;         /* paced: steps run more than a period after they were due */
    bool clock_started;      /* paced: the schedule starts at the first batch's arrival */
    uint32_t step_us;        /* 0: free-running */
    uint64_t period;         /* step period in cycles */
    uint64_t t0;             /* paced: device clock when step 0 was due */
    uint64_t last_rx;        /* device clock of the last EventBatch (or the start) */
    uint64_t idle_timeout;   /* cycles */
    es_batch_t q[ES_STREAM_SLOTS];
    uint8_t q_head, q_count;
    uint32_t q_step;         /* next step of the head batch */
    uint32_t q_item;         /* next item of the head batch */
    bool flush;              /* an OutputBatch is due */
    es_stream_t engine;
    int32_t thresholds[ES_STREAM_MAX_CHANNELS];
    uint16_t step_idx[ES_STREAM_BATCH_ITEMS]; /* one step's event indices */
    int64_t scores[ES_MAX_SCORES];
    edgespike_OutputBatch out; /* being filled */
} es_link_stream_t;

/* A model slot: the blob bytes, its parsed view, its engine and state arena. */
typedef struct {
    uint64_t blob_words[(ES_MODEL_CAPACITY + 7u) / 8u];  /* uint64 for alignment */
    uint64_t arena_words[(ES_STATE_CAPACITY + 7u) / 8u];
    es_model_t model;
    es_engine_t engine;
    uint32_t blob_len;
    uint32_t arena_used;
} es_slot_t;

typedef struct {
    es_port_t port;
    es_frame_rx_t rx;
    uint8_t rx_buf[ES_MAX_FRAME_BYTES + ES_FRAME_CRC_BYTES];
    uint8_t tx_buf[ES_MAX_FRAME_BYTES + ES_FRAME_CRC_BYTES];
    edgespike_Frame req;
    edgespike_Frame resp;
    es_slot_t slots[2];
    uint8_t active;        /* index of the slot that runs */
    bool loaded;           /* the active slot holds a committed model */
    bool uploading;        /* a ModelBegin is open on the other slot */
    uint32_t up_total;     /* bytes announced by ModelBegin */
    uint32_t up_crc;       /* CRC-32 announced by ModelBegin */
    uint32_t up_received;  /* next expected offset */
    edgespike_Stats stats;
    uint32_t session;      /* session of the last request read (0: none; FRAMING.md) */
    uint32_t last_seq;     /* seq of the last request of that session */
    es_error_t err;        /* scratch for the engine's error reports */
    es_link_stream_t stream; /* (added for streaming) */
} es_link_t;

/* Set up a link (it is large: give it static storage). Resets everything. */
void es_link_init(es_link_t *l, const es_port_t *port);

/* Feed received bytes; answers complete frames through port.write before returning. */
void es_link_rx(es_link_t *l, const uint8_t *data, size_t n);

/* Forget a partly received frame (e.g. a new connection starts). The model stays. */
void es_link_resync(es_link_t *l);

/* Streaming work: runs the steps that are due (at most one per call) and sends the
 * OutputBatches they produce; ends a stalled stream. Returns microseconds until it has
 * work again (0: call again at once; ES_LINK_IDLE: nothing scheduled, sleep until bytes
 * arrive). A port calls it in its main loop, between received chunks. */
uint32_t es_link_poll(es_link_t *l);

/* The connection is gone (a port that can tell, e.g. the host device's TCP client): ends an
 * open stream and abandons an open upload (both belonged to that connection). The model
 * stays. */
void es_link_disconnected(es_link_t *l);

/* The port counts bytes it lost (e.g. a UART overrun); reported in Stats. */
void es_link_note_rx_overrun(es_link_t *l, uint32_t lost);

#ifdef __cplusplus
}
#endif
#endif /* ES_LINK_H */
