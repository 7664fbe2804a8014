"""Write protocol/vectors/frames.json as a C header, so the firmware's tests check the very
bytes the Python tests check. Run by the firmware build (CMake), never committed:

    python3 protocol/vectors/c_header.py frames.json es_golden_vectors.h
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def _bytes(hexstr: str) -> str:
    data = bytes.fromhex(hexstr)
    return "{" + ", ".join(f"0x{b:02x}" for b in data) + "}" if data else "{0}"


def render(vectors: dict) -> str:
    out = ["/* Generated from protocol/vectors/frames.json by c_header.py: do not edit. */",
           "#ifndef ES_GOLDEN_VECTORS_H", "#define ES_GOLDEN_VECTORS_H", "",
           "#include <stddef.h>", "#include <stdint.h>", "",
           '#include "edgespike.pb.h"', ""]
    # Each case is a static array of its own (so sizes are exact) plus a table row.
    rows = []
    for i, c in enumerate(vectors["frames"]):
        out.append(f"static const uint8_t es_gv_frame_{i}[] = {_bytes(c['frame_hex'])};")
        out.append(f"static const uint8_t es_gv_payload_{i}[] = {_bytes(c['payload_hex'])};")
        rows.append(f'    {{"{c["name"]}", es_gv_frame_{i}, {len(c["frame_hex"]) // 2}u, '
                    f'es_gv_payload_{i}, {len(c["payload_hex"]) // 2}u, '
                    f'{int(c["message"].get("seq", 0))}u, edgespike_Frame_{c["body"]}_tag}},')
    out += ["", "typedef struct {", "    const char *name;", "    const uint8_t *frame;",
            "    size_t frame_len;", "    const uint8_t *payload;", "    size_t payload_len;",
            "    uint32_t seq;", "    pb_size_t body_tag;", "} es_gv_frame_t;", "",
            "static const es_gv_frame_t es_gv_frames[] = {", *rows, "};", ""]
    rows = []
    for i, c in enumerate(vectors["cobs"]):
        out.append(f"static const uint8_t es_gv_raw_{i}[] = {_bytes(c['raw_hex'])};")
        out.append(f"static const uint8_t es_gv_cobs_{i}[] = {_bytes(c['cobs_hex'])};")
        rows.append(f'    {{"{c["name"]}", es_gv_raw_{i}, {len(c["raw_hex"]) // 2}u, '
                    f'es_gv_cobs_{i}, {len(c["cobs_hex"]) // 2}u}},')
    out += ["", "typedef struct {", "    const char *name;", "    const uint8_t *raw;",
            "    size_t raw_len;", "    const uint8_t *cobs;", "    size_t cobs_len;",
            "} es_gv_cobs_t;", "", "static const es_gv_cobs_t es_gv_cobs[] = {", *rows, "};", ""]
    rows = []
    for i, c in enumerate(vectors["negative"]):
        out.append(f"static const uint8_t es_gv_bad_{i}[] = {_bytes(c['frame_hex'])};")
        rows.append(f'    {{"{c["name"]}", es_gv_bad_{i}, {len(c["frame_hex"]) // 2}u, '
                    f'edgespike_ErrorCode_{c["error"]}}},')
    out += ["", "typedef struct {", "    const char *name;", "    const uint8_t *frame;",
            "    size_t frame_len;", "    edgespike_ErrorCode error;", "} es_gv_negative_t;", "",
            "static const es_gv_negative_t es_gv_negative[] = {", *rows, "};", "",
            "#define ES_GV_COUNT(a) (sizeof(a) / sizeof((a)[0]))", "",
            "#endif /* ES_GOLDEN_VECTORS_H */", ""]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    text = render(json.loads(Path(argv[1]).read_text()))
    target = Path(argv[2])
    if not target.exists() or target.read_text() != text:
        target.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
