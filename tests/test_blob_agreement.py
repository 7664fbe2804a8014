"""The C parser (firmware/core/es_model.c, through the host library) and the SDK's loader
(edgespike.model.from_bytes) give the same verdict on every blob (docs/SEMANTICS.md, "Which
blobs are accepted"), and the loader refuses with a named error, never a bare exception.

Blobs: valid SDK-built ones and protocol/vectors/model_small.bin, each mutated field by field
(unknown enum values, values at 2^32, every other wire type, odd-length arrays, bad UTF-8,
overlong tags and lengths, groups, unknown fields, dropped and duplicated fields) and at random
(bit flips, overwrites, truncations, insertions, deletions), every one re-hashed so that the
CRC passes. The libFuzzer corpora go through the same check in tests/test_fuzz.py.
"""
from __future__ import annotations

import numpy as np
import pytest

from blob_mutations import (
    c_status, disagreement, py_verdict, random_mutants, rehash, seed_bodies, seed_models,
    structured_mutants, varint,
)
from edgespike.paths import REPO_ROOT
from edgespike.errors import ModelFormatError
from edgespike.model import from_bytes, to_bytes

ES_ERR_DECODE, ES_ERR_UNSUPPORTED = 4, 14


def _bodies() -> list[bytes]:
    return seed_bodies() + [(REPO_ROOT / "protocol/vectors/model_small.bin").read_bytes()[:-6]]


def _check(mutants) -> int:
    failures = []
    count = 0
    for what, body in mutants:
        count += 1
        why = disagreement(rehash(body))
        if why:
            failures.append(f"{what}: {why}")
    assert not failures, f"{len(failures)} of {count} blobs disagree:\n" + "\n".join(failures[:20])
    return count


@pytest.mark.parametrize("index", range(5))
def test_seed_blobs_load_on_both_sides(index: int) -> None:
    body = _bodies()[index]
    assert c_status(rehash(body)) == 0
    model, exc = py_verdict(rehash(body))
    assert exc is None and model is not None


@pytest.mark.parametrize("index", range(5))
def test_structured_mutants_agree(index: int) -> None:
    assert _check(structured_mutants(_bodies()[index])) > 500


@pytest.mark.parametrize("index", range(5))
def test_random_mutants_agree(index: int) -> None:
    rng = np.random.default_rng(100 + index)
    assert _check(random_mutants(_bodies()[index], rng, 2000)) == 2000


def _with_field(body: bytes, number: int, wt: int, payload: bytes) -> bytes:
    return rehash(body + varint((number << 3) | wt) + payload)


@pytest.mark.parametrize("field, name, value", [
    (4, "input kind", 2), (7, "decoding", 4), (4, "input kind", (1 << 32) - 1),
])
def test_unknown_model_enum_is_a_named_error(field: int, name: str, value: int) -> None:
    blob = _with_field(_bodies()[0], field, 0, varint(value))
    with pytest.raises(ModelFormatError, match=f"unknown {name}"):
        from_bytes(blob)
    assert c_status(blob) == ES_ERR_UNSUPPORTED


def test_unknown_encoder_kind_is_refused_on_both_sides() -> None:
    enc = b"\x08" + varint(99)
    blob = _with_field(_bodies()[1], 10, 2, varint(len(enc)) + enc)
    model, exc = py_verdict(blob)
    assert isinstance(exc, ModelFormatError) and "unknown encoder kind 99" in str(exc)
    assert c_status(blob) == ES_ERR_UNSUPPORTED
    # the last kind on the wire wins (protobuf merges repeated sub-messages) on both sides
    fixed = b"\x08" + varint(2)
    blob = _with_field(blob[:-6], 10, 2, varint(len(fixed)) + fixed)
    model, exc = py_verdict(blob)
    assert exc is None and model.encoder.kind == "rate"
    assert c_status(blob) == 0


def test_bad_utf8_in_a_name_the_device_skips_is_refused_on_both_sides() -> None:
    blob = _with_field(_bodies()[0], 11, 2, b"\x02\xc0\x80")  # a label, overlong NUL
    model, exc = py_verdict(blob)
    assert isinstance(exc, ModelFormatError) and "UTF-8" in str(exc)
    assert c_status(blob) == ES_ERR_DECODE


def test_wrong_wire_type_is_refused_on_both_sides() -> None:
    # input_size (field 3) as fixed32: upb would take it as an unknown field and load the
    # model with the earlier value; nanopb refuses it
    blob = _with_field(_bodies()[0], 3, 5, b"\x04\x00\x00\x00")
    model, exc = py_verdict(blob)
    assert isinstance(exc, ModelFormatError) and "wire type 5" in str(exc)
    assert c_status(blob) == ES_ERR_DECODE


def test_unknown_fields_are_skipped_on_both_sides() -> None:
    body = _bodies()[0]
    for wt, payload in ((0, varint(1 << 40)), (1, bytes(8)), (2, b"\x03abc"), (5, bytes(4))):
        blob = _with_field(body, 300, wt, payload)
        model, exc = py_verdict(blob)
        assert exc is None, exc
        assert c_status(blob) == 0


def test_sdk_blobs_still_round_trip() -> None:
    for model in seed_models():
        blob = to_bytes(model)
        assert to_bytes(from_bytes(blob)) == blob


def test_weights_sent_as_a_varint_are_refused() -> None:
    """A 1x1 layer whose weight data (a bytes field) is sent as a varint: nanopb hands the
    callback a copy of the varint on its stack, and the C parser used to keep that address as
    the weights (AddressSanitizer: stack-use-after-return; without it, a garbage weight)."""
    from blob_mutations import parse_tree, serialize
    from edgespike.model import Layer, Model, Weights
    model = Model(input_size=1, timesteps=2, layers=[Layer(Weights(np.full((1, 1), 5, np.int8)))])
    tree = parse_tree(to_bytes(model)[:-6])
    weights = next(f for f in next(f for f in tree if f.number == 8).value if f.number == 3)
    data = next(f for f in weights.value if f.number == 4)
    data.wt, data.value = 0, 5
    blob = rehash(serialize(tree))
    assert c_status(blob) == ES_ERR_DECODE
    model, exc = py_verdict(blob)
    assert isinstance(exc, ModelFormatError) and "layers.weights.data (field 4) has wire type 0" in str(exc)


def test_c_grammar_table_matches_the_proto() -> None:
    """es_model.c's wire-grammar tables name every field of the model messages with the kind
    the .proto gives it (check_wire reads the same from the descriptors): a field added to the
    .proto but not to the C table would be skipped by the device and checked by the SDK."""
    import re
    from edgespike.protocol import pb
    source = (REPO_ROOT / "firmware/core/es_model.c").read_text()
    fd_type = pb.Model.DESCRIPTOR.fields[0].__class__
    kinds = {fd_type.TYPE_UINT32: "WK_VAR32", fd_type.TYPE_SINT32: "WK_VAR32",
             fd_type.TYPE_ENUM: "WK_VAR32", fd_type.TYPE_FIXED32: "WK_FIXED32",
             fd_type.TYPE_BYTES: "WK_BYTES", fd_type.TYPE_STRING: "WK_TEXT",
             fd_type.TYPE_MESSAGE: "WK_MSG"}
    subs = {"WM_LAYER": "Layer", "WM_WEIGHTS": "Weights", "WM_NEURONS": "Neurons",
            "WM_ENCODER": "Encoder"}
    for name in ("Model", "Layer", "Weights", "Neurons", "Encoder"):
        table = re.search(r"wf_%s\[\] = \{(.*?)\};" % name.lower(), source, re.S).group(1)
        c_fields = {int(n): (k, subs.get(s)) for n, k, s in
                    re.findall(r"\{(\d+), (WK_\w+), (\w+)\}", table)}
        want = {}
        for fd in getattr(pb, name).DESCRIPTOR.fields:
            kind = kinds[fd.type]
            if fd.type == fd_type.TYPE_SINT32 and fd.is_repeated:
                kind = "WK_REP32"
            want[fd.number] = (kind, fd.message_type.name if fd.message_type else None)
        assert c_fields == want, name
