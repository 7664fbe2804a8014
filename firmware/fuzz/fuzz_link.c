/*
 * libFuzzer harness (a): the link's frame receive path. The input is a sequence of records
 * (fuzz_common.h): raw bytes as a port hands them over, whole frames the harness seals with
 * CRC and COBS, clock steps and port events, fed to a fresh link with no model. Seeds
 * (firmware/fuzz/gen_seeds.py) hold every request of protocol/vectors/frames.json, the
 * negative frames, and whole sessions: Hello, model upload, Run, Stats, Reset.
 *
 * Checked besides AddressSanitizer and UBSan: every byte the device sends decodes to a
 * frame, and after the input a Hello is still answered with DeviceInfo (the link is never
 * wedged).
 */
#include "fuzz_common.h"

static es_link_t link_;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_link_init(&link_);
    fz_run_records(&link_, data, size);

    /* whatever came before, a resync and a Hello get an answer */
    es_link_resync(&link_);
    edgespike_Frame hello = edgespike_Frame_init_zero;
    hello.seq = 77u;
    hello.which_body = edgespike_Frame_hello_tag;
    hello.body.hello.protocol_version = ES_PROTOCOL_VERSION;
    const uint32_t before = fz_frames_out;
    fz_send_frame(&link_, &hello);
    if (fz_frames_out == before || fz_last_body != edgespike_Frame_device_info_tag) {
        fz_fail("the link did not answer a Hello with DeviceInfo after the input");
    }
    return 0;
}
