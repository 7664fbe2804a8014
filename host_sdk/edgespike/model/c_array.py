"""The model blob as a C header, to compile a model into your own firmware (the TFLite Micro
way): ``edgespike export model.esm --c model.h``.

The header holds the blob's exact bytes as an aligned ``const`` array (it stays in flash: the
runtime parses it in place and keeps pointers into it, nothing is copied to RAM), its size, its
content hash (what ``es_model_t.crc32`` and ``DeviceInfo.model_crc32`` say) and the CRC-32 of
the whole array, the RAM the runtime will ask for (``es_engine_arena_bytes``, computed here by
:meth:`Model.state_bytes`, which mirrors it), the model's shape, its output labels, and
optionally one input to classify (a self-test, or the example application's input).

Names come from ``symbol`` (default: the header's file name): ``model.h`` gives
``model_data``, ``MODEL_SIZE``, ``MODEL_ARENA_BYTES``... Include the header in one .c file.
"""
from __future__ import annotations

import re
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edgespike.errors import InputError, ModelError
from edgespike.model.blob import from_bytes
from edgespike.model.quantized import Model

#: Bytes per line of the array.
_PER_LINE = 12


@dataclass
class CHeader:
    """What :func:`write_c_header` wrote. Sizes in bytes.

    Attributes:
        path: the header.
        symbol: the C name prefix (``model`` -> ``model_data``, ``MODEL_SIZE``).
        blob_bytes: size of the array (the blob).
        content_crc32: the blob's content hash (its last field).
        data_crc32: CRC-32 of the whole array (``es_crc32(0, data, size)``).
        arena_bytes: RAM the runtime needs for the model's state.
        input_items: events or values of the compiled-in input, or None without one.
        input_static: the compiled-in values are the same at every step (one row stored).
        input_label: the compiled-in input's label (from an .npz), or None.
    """

    path: Path
    symbol: str
    blob_bytes: int
    content_crc32: int
    data_crc32: int
    arena_bytes: int
    input_items: Optional[int] = None
    input_static: bool = False
    input_label: Optional[int] = None

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        d = asdict(self)
        d["path"] = str(self.path)
        return d


def c_symbol(name: str) -> str:
    """A C identifier from a file stem or model name (``digits-int8.h`` -> ``digits_int8``)."""
    ident = re.sub(r"[^0-9a-zA-Z_]", "_", name).strip("_").lower() or "model"
    return f"m_{ident}" if ident[0].isdigit() else ident


def _c_string(text: str) -> str:
    """A C string literal: printable ASCII as is, the rest as octal escapes ('?' too: no
    trigraphs)."""
    out = []
    for b in text.encode("utf-8"):
        ch = chr(b)
        if ch in "\"\\?" or not 0x20 <= b < 0x7F:
            out.append(f"\\{b:03o}" if ch not in "\"\\" else "\\" + ch)
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _array(values: list[int], fmt: str, per_line: int, indent: str = "    ") -> str:
    lines = []
    for i in range(0, len(values), per_line):
        lines.append(indent + ", ".join(fmt.format(v) for v in values[i:i + per_line]) + ",")
    return "\n".join(lines)


def _input_block(model: Model, x: np.ndarray, sym: str, up: str,
                 label: Optional[int]) -> tuple[str, int, bool]:
    """The compiled-in input: events (spike models) or values (direct input)."""
    from edgespike.sim.reference import check_input, events_from_spikes

    x = check_input(model, x)
    if x.ndim != 2:
        raise InputError(f"one input of shape ({model.timesteps}, {model.input_size}) is "
                         f"compiled in; got {x.shape}")
    lines = [f"/* The compiled-in input: {model.timesteps} steps x {model.input_size} inputs"
             + (f", label {label}" if label is not None else "") + ". */",
             f"#define {up}_HAS_INPUT 1",
             f"#define {up}_INPUT_LABEL {label if label is not None else -1}"]
    static = False
    if model.input_kind == "spikes":
        items = [int(v) for v in events_from_spikes(x)]
        lines += [f"#define {up}_INPUT_STATIC 0",
                  f"#define {up}_INPUT_COUNT {len(items)}u /* events (step << 16) | index */",
                  f"static const uint32_t {sym}_input_events[{max(1, len(items))}] = {{",
                  _array(items or [0], "0x{:08x}u", 6), "};"]
    else:
        static = bool((x == x[0]).all())
        rows = x[:1] if static else x
        items = [int(v) for v in rows.reshape(-1)]
        what = "one step, the same at every step" if static else "timesteps x input_size"
        lines += [f"#define {up}_INPUT_STATIC {int(static)} /* es_input_t.static_values */",
                  f"#define {up}_INPUT_COUNT {len(items)}u /* values: {what} */",
                  f"static const int32_t {sym}_input_values[{len(items)}] = {{",
                  _array(items, "{:d}", 12), "};"]
    return "\n".join(lines), len(items), static


def c_header_text(blob: bytes, *, symbol: str = "model", x: Optional[np.ndarray] = None,
                  label: Optional[int] = None, source: str = "") -> tuple[str, CHeader]:
    """The header's text for ``blob`` (validated first: a bad blob raises
    :class:`~edgespike.errors.ModelError`), and what it holds."""
    model = from_bytes(blob)
    model.validate()
    sym = c_symbol(symbol)
    up = sym.upper()
    content_crc = int.from_bytes(blob[-4:], "little")
    data_crc = zlib.crc32(blob) & 0xFFFFFFFF
    arena = model.state_bytes()
    sizes = " -> ".join([str(model.input_size)] + [
        f"{layer.size} ({layer.weights.encoding}{', recurrent' if layer.recurrent is not None else ''})"
        for layer in model.layers])
    out = [
        f"/* {sym}.h: the EdgeSpike model {model.name!r} as a C array. Written by 'edgespike "
        "export'" + (f" from {source}" if source else "") + ";",
        " * do not edit: export it again. Include it in ONE .c file.",
        " *",
        " * The array is const: it stays in flash, and es_model_parse() reads it in place (the",
        " * parsed model points into it; nothing is copied to RAM). See firmware/core/edgespike.h.",
        " *",
        f" *   input    {model.input_size} {model.input_kind}, {model.timesteps} steps",
        f" *   layers   {sizes}",
        f" *   output   {model.output_size} scores, {model.decoding}",
        f" *   blob     {len(blob)} bytes, content hash {content_crc:#010x}",
        f" *   RAM      {arena} bytes of arena (es_engine_arena_bytes), 8-byte aligned",
        " */",
        f"#ifndef {up}_H_EDGESPIKE",
        f"#define {up}_H_EDGESPIKE",
        "",
        "#include <stdint.h>",
        "",
        f"#define {up}_SIZE {len(blob)}u /* bytes of {sym}_data */",
        f"#define {up}_CRC32 0x{content_crc:08x}u /* content hash: es_model_t.crc32, "
        "DeviceInfo.model_crc32 */",
        f"#define {up}_DATA_CRC32 0x{data_crc:08x}u /* es_crc32(0, {sym}_data, {up}_SIZE) */",
        f"#define {up}_ARENA_BYTES {arena}u /* es_engine_arena_bytes(): the RAM to provide */",
        f"#define {up}_INPUT_SIZE {model.input_size}u",
        f"#define {up}_INPUT_VALUES {int(model.input_kind == 'values')} /* 1: int32 values "
        "(es_input_t.values), 0: spike events */",
        f"#define {up}_TIMESTEPS {model.timesteps}u",
        f"#define {up}_OUTPUT_SIZE {model.output_size}u",
        "",
        "#if defined(__GNUC__) || defined(__clang__)",
        f"#define {up}_ALIGN __attribute__((aligned(8)))",
        "#else",
        f"#define {up}_ALIGN",
        "#endif",
        "",
        f"static const uint8_t {sym}_data[{up}_SIZE] {up}_ALIGN = {{",
        _array(list(blob), "0x{:02x}", _PER_LINE),
        "};",
        "",
    ]
    if model.labels:
        names = [_c_string(str(t)) for t in model.labels]
        out += [f"#define {up}_HAS_LABELS 1",
                f"#define {up}_LABEL_COUNT {len(names)}u /* output i is {sym}_labels[i] */",
                f"static const char *const {sym}_labels[{up}_LABEL_COUNT] = {{",
                _array(names, "{}", 8), "};", ""]
    else:
        out += [f"#define {up}_HAS_LABELS 0", ""]
    header = CHeader(path=Path(), symbol=sym, blob_bytes=len(blob), content_crc32=content_crc,
                     data_crc32=data_crc, arena_bytes=arena)
    if x is not None:
        block, n, static = _input_block(model, np.asarray(x), sym, up, label)
        out += [block, ""]
        header.input_items, header.input_static, header.input_label = n, static, label
    else:
        out += [f"#define {up}_HAS_INPUT 0", ""]
    out += [f"#endif /* {up}_H_EDGESPIKE */", ""]
    return "\n".join(out), header


def write_c_header(blob: bytes | Model, path: str | Path, *, symbol: Optional[str] = None,
                   x: Optional[np.ndarray] = None, label: Optional[int] = None,
                   source: str = "") -> CHeader:
    """Write ``blob`` (bytes, or a :class:`Model`, serialized) as a C header at ``path``.

    Args:
        blob: the model blob's bytes (written unchanged) or a model.
        path: the header to write.
        symbol: C name prefix; default: the file name's stem.
        x: one input (timesteps x input_size) to compile in, checked against the model.
        label: that input's label, written as ``<SYMBOL>_INPUT_LABEL``.
        source: where the blob came from, for the header's comment.
    """
    from edgespike.model.blob import to_bytes

    path = Path(path)
    data = to_bytes(blob) if isinstance(blob, Model) else bytes(blob)
    if len(data) < 5:
        raise ModelError(f"{len(data)} bytes are not a model blob")
    text, header = c_header_text(data, symbol=symbol or path.stem, x=x, label=label,
                                 source=source)
    path.write_text(text)
    header.path = path
    return header
