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
 * once, synchronously, through the byte sink. See protocol/FRAMING.md for the rules.
 */
#ifndef ES_LINK_H
#define ES_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edgespike.pb.h"
#include "es_engine.h"
#include "es_frame.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ES_PROTOCOL_VERSION 1u
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
} es_port_t;

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
    es_error_t err;        /* scratch for the engine's error reports */
} es_link_t;

/* Set up a link (it is large: give it static storage). Resets everything. */
void es_link_init(es_link_t *l, const es_port_t *port);

/* Feed received bytes; answers complete frames through port.write before returning. */
void es_link_rx(es_link_t *l, const uint8_t *data, size_t n);

/* Forget a partly received frame (e.g. a new connection starts). The model stays. */
void es_link_resync(es_link_t *l);

/* The port counts bytes it lost (e.g. a UART overrun); reported in Stats. */
void es_link_note_rx_overrun(es_link_t *l, uint32_t lost);

#ifdef __cplusplus
}
#endif
#endif /* ES_LINK_H */
