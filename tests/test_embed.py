"""Embedding the runtime in your own firmware: ``edgespike export --c`` headers, the runtime as
a C library (firmware/core/CMakeLists.txt, used with add_subdirectory and, installed, with
find_package), and the hello_spikes example, checked against the numpy reference: compiled for
this machine over models drawn from the whole validated space, and for mps2-an386 under QEMU
both ways."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from edgespike import cli, paths
from edgespike.errors import InputError, ModelError, ToolMissing
from edgespike.model import Layer, Model, Neurons, Weights, save, to_bytes
from edgespike.model.c_array import c_symbol, write_c_header
from edgespike.sim import reference
from qemu_marks import needs_qemu
from strategies import inputs, models

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "firmware" / "examples" / "hello_spikes"
CORE = REPO / "firmware" / "core"
TOOLCHAIN = REPO / "firmware" / "cmake" / "arm-none-eabi.cmake"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO / "host_sdk")}


# ---- the output of hello_spikes, against the reference ---------------------------------------
def parse_output(text: str) -> dict:
    """prediction, scores and per-layer counters from hello_spikes' lines."""
    m = re.search(r"^prediction: (-?\d+)", text, re.M)
    assert m, text
    scores: list[int] = []
    for first, rest in re.findall(r"^scores (\d+):((?: -?\d+)+)$", text, re.M):
        assert int(first) == len(scores), text
        scores += [int(v) for v in rest.split()]
    layers = [tuple(int(v) for v in g) for g in re.findall(
        r"^layer \d+: input_events (\d+) synops (\d+) neuron_updates (\d+) spikes (\d+)$",
        text, re.M)]
    arena = re.search(r"^arena: (\d+) bytes needed, (\d+) provided$", text, re.M)
    return {"prediction": int(m.group(1)), "scores": scores, "layers": layers,
            "arena": int(arena.group(1)) if arena else None,
            "in_place": "weights read in place: yes" in text, "done": "hello_spikes: done" in text}


def check_against_reference(text: str, model: Model, x: np.ndarray) -> None:
    got = parse_output(text)
    ref = reference.run(model, x)
    assert got["done"], text
    assert got["prediction"] == ref.prediction
    assert got["scores"] == [int(s) for s in ref.scores]
    assert got["layers"] == [(c.input_events, c.synops, c.neuron_updates, c.spikes)
                             for c in ref.counters]
    assert got["arena"] == model.state_bytes()
    assert got["in_place"], text


# ---- edgespike export --c -------------------------------------------------------------------
def _c_array_bytes(text: str, name: str) -> bytes:
    body = re.search(rf"{name}\[[A-Z_]+\] [A-Z_]+ = {{(.*?)}};", text, re.S).group(1)
    return bytes(int(v, 16) for v in re.findall(r"0x([0-9a-f]{2})\b", body))


def test_export_header_holds_the_exact_blob(tmp_path):
    from edgespike.model.samples import digits_templates

    sample = digits_templates()
    blob = to_bytes(sample.model)
    save(sample.model, tmp_path / "digits.esm")
    np.savez(tmp_path / "test.npz", inputs=sample.inputs[:4], labels=sample.labels[:4])
    assert cli.main(["export", str(tmp_path / "digits.esm"), "--c", str(tmp_path / "digits.h"),
                     "--input", str(tmp_path / "test.npz"), "--index", "2", "--json"]) == 0
    text = (tmp_path / "digits.h").read_text()
    assert _c_array_bytes(text, "digits_data") == blob
    assert f"#define DIGITS_SIZE {len(blob)}u" in text
    assert f"#define DIGITS_CRC32 0x{int.from_bytes(blob[-4:], 'little'):08x}u" in text
    assert f"#define DIGITS_DATA_CRC32 0x{zlib.crc32(blob):08x}u" in text
    assert f"#define DIGITS_ARENA_BYTES {sample.model.state_bytes()}u" in text
    assert "__attribute__((aligned(8)))" in text and "static const uint8_t digits_data" in text
    assert f"#define DIGITS_INPUT_LABEL {int(sample.labels[2])}" in text
    events = [int(v, 16) for v in re.findall(r"0x([0-9a-f]{8})u", text.split(
        "digits_input_events")[1])]
    assert events == [int(e) for e in reference.events_from_spikes(sample.inputs[2])]


def test_export_refuses_bad_input(tmp_path, capsys):
    from edgespike.model.blob import to_bytes as blob_of

    model = Model(input_size=3, timesteps=2, layers=[Layer(Weights(np.ones((3, 2), np.int8)),
                                                           Neurons(vth=4))])
    (tmp_path / "m.esm").write_bytes(blob_of(model))
    np.save(tmp_path / "bad.npy", np.full((2, 3), 2))        # a spike of 2
    np.save(tmp_path / "shape.npy", np.zeros((2, 4)))
    corrupt = bytearray(blob_of(model))
    corrupt[5] ^= 0xFF
    (tmp_path / "corrupt.esm").write_bytes(bytes(corrupt))
    cases = [
        (["m.esm", "--input", "bad.npy"], "InputError"),
        (["m.esm", "--input", "shape.npy"], "InputError"),
        (["m.esm", "--input", "bad.npy", "--index", "3"], "InputError"),
        (["corrupt.esm"], "BlobError"),
        (["missing.esm"], "ModelError"),
    ]
    for argv, error in cases:
        args = [str(tmp_path / argv[0]), "--c", str(tmp_path / "out.h")]
        args += [str(tmp_path / a) if a.endswith(".npy") else a for a in argv[1:]]
        assert cli.main(["export"] + args) == 1
        assert error in capsys.readouterr().err
    with pytest.raises(InputError):
        write_c_header(model, tmp_path / "x.h", x=np.zeros((3, 3)))
    with pytest.raises(ModelError):
        write_c_header(b"\x01\x02", tmp_path / "x.h")


def test_c_names_and_strings():
    assert c_symbol("digits-int8") == "digits_int8"
    assert c_symbol("2model") == "m_2model"
    assert c_symbol("...") == "model"
    from edgespike.model.c_array import _c_string

    assert _c_string('a"b\\c?é') == '"a\\"b\\\\c\\077\\303\\251"'


# ---- hello_spikes on this machine (the host build of the core) --------------------------------
def _host_cc() -> str:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no host C compiler")
    return cc


def run_on_host(header: Path, tmp_path: Path) -> str:
    lib = paths.host_library()
    exe = tmp_path / "hello_spikes"
    subprocess.run([_host_cc(), "-std=c99", "-Wall", "-Wextra", "-Werror", "-O1",
                    f"-I{CORE}", f"-I{EXAMPLE}", f"-I{header.parent}",
                    str(EXAMPLE / "main.c"), str(EXAMPLE / "board_host.c"),
                    f"-L{lib.parent}", "-ledgespike_host", f"-Wl,-rpath,{lib.parent}",
                    "-o", str(exe)], check=True, capture_output=True, text=True)
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _host_ready() -> None:
    try:
        paths.host_library()
    except ToolMissing as exc:
        pytest.skip(str(exc))


@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(data=models(max_layers=3, max_width=96, max_input=128, max_timesteps=12).flatmap(
    lambda m: inputs(m, batch=1).map(lambda x: (m, x[0]))))
def test_hello_spikes_on_host_equals_reference(tmp_path_factory, data):
    """Any valid model and input, compiled in: the example's result is the reference's."""
    _host_ready()
    model, x = data
    tmp = tmp_path_factory.mktemp("host")
    write_c_header(model, tmp / "model.h", x=x)
    check_against_reference(run_on_host(tmp / "model.h", tmp), model, x)


def edge_models() -> list[tuple[str, Model, np.ndarray]]:
    """Corners: one step, no input spike at all, a saturating current, the largest fan-in."""
    one = Model(input_size=4, timesteps=1, layers=[Layer(Weights(np.full((4, 3), 127, np.int8),
                                                                 exp=3), Neurons(vth=1))])
    quiet = Model(input_size=8, timesteps=6, decoding="membrane_last",
                  layers=[Layer(Weights(np.eye(8, 5, dtype=np.int8) * 9), Neurons(vth=3,
                                                                                  bias_mant=5))])
    fan = Model(input_size=4096, timesteps=3, decoding="membrane_sum",
                layers=[Layer(Weights(np.where(np.arange(4096 * 2).reshape(4096, 2) % 3 == 0,
                                               1, -1).astype(np.int8), exp=-4),
                              Neurons(vth=2000))])
    sat = Model(input_size=2, timesteps=5, input_kind="values", input_max_abs=32767,
                decoding="membrane_last",
                layers=[Layer(Weights(np.array([[1, -1], [1, 1]], np.int8), exp=1),
                              Neurons(du=4096, dv=0, vth=131071))])
    rng = np.random.default_rng(7)
    return [
        ("one_step", one, np.ones((1, 4), np.uint8)),
        ("no_spike", quiet, np.zeros((6, 8), np.uint8)),
        ("fan_in_4096", fan, (rng.random((3, 4096)) < 0.3).astype(np.uint8)),
        ("saturating_static", sat, np.tile(np.array([[32767, 32767]]), (5, 1))),
    ]


@pytest.mark.parametrize("case", edge_models(), ids=lambda c: c[0])
def test_hello_spikes_on_host_corners(case, tmp_path):
    _host_ready()
    _, model, x = case
    model.validate()
    write_c_header(model, tmp_path / "model.h", x=x)
    check_against_reference(run_on_host(tmp_path / "model.h", tmp_path), model, x)


# ---- hello_spikes for mps2-an386 under QEMU: add_subdirectory and find_package ----------------
def qemu_test(fn):
    """Marks of a test that cross-builds for mps2-an386 and runs QEMU (skipped, saying why,
    without the toolchain build: the nanopb runtime comes from firmware/build.sh's tree)."""
    for mark in needs_qemu(paths.firmware_image):
        fn = mark(fn)
    return fn


def _cmake(*args: str, cwd: Path = REPO) -> None:
    proc = subprocess.run(["cmake", *args], cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]


def _nanopb() -> str:
    return str(paths.build_dir() / "_deps" / "nanopb")


def run_in_qemu(elf: Path) -> str:
    proc = subprocess.run(["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor",
                           "none", "-serial", "null", "-semihosting-config",
                           "enable=on,target=native", "-kernel", str(elf)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stderr + proc.stdout  # QEMU writes semihosting output to stderr


def qemu_models() -> list[tuple[str, Model, np.ndarray]]:
    """A ternary recurrent model (per-neuron magnitudes and thresholds) and a direct-input
    model with a still input (the static path), beside the default digits sample."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("es_vectors_generate",
                                                  REPO / "protocol" / "vectors" / "generate.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    rng = np.random.default_rng(3)
    values = Model(input_size=6, timesteps=7, input_kind="values", input_max_abs=90,
                   decoding="membrane_sum",
                   layers=[Layer(Weights(rng.integers(-60, 60, (6, 16)).astype(np.int8), exp=-1),
                                 Neurons(vth=70, dv=300)),
                           Layer(Weights(rng.integers(-1, 2, (16, 4)).astype(np.int8), exp=2,
                                         encoding="ternary", a_pos=3, a_neg=5),
                                 Neurons(vth=40, dv=500))])
    return [("small_ternary_recurrent", gen.small_model(), gen.small_input()),
            ("values_static", values, np.tile(rng.integers(-90, 91, (1, 6)), (7, 1)))]


@pytest.fixture(scope="module")
def subdir_build(tmp_path_factory):
    """hello_spikes configured with the runtime from source (add_subdirectory), default model
    (the digits sample, exported by make_model.py at build time)."""
    build = tmp_path_factory.mktemp("hello_subdir")
    _cmake("-S", str(EXAMPLE), "-B", str(build), f"-DCMAKE_TOOLCHAIN_FILE={TOOLCHAIN}",
           f"-DEDGESPIKE_NANOPB_DIR={_nanopb()}", "-DEDGESPIKE_WERROR=ON")
    _cmake("--build", str(build), "-j", "2")
    return build


@qemu_test
def test_hello_spikes_default_digits_in_qemu(subdir_build):
    from edgespike.model import load

    text = run_in_qemu(subdir_build / "hello_spikes.elf")
    model = load(subdir_build / "model" / "digits.esm")
    with np.load(subdir_build / "model" / "digits_test.npz") as z:
        x, label = z["inputs"][0], int(z["labels"][0])
    check_against_reference(text, model, x)
    assert "(correct)" in text and reference.run(model, x).prediction == label
    size = (subdir_build / "hello_spikes.size").read_text().split("\n")[1].split()
    text_b, data_b, bss_b = (int(v) for v in size[:3])
    assert text_b + data_b < 64 * 1024  # the whole application: runtime, model, input


@qemu_test
@pytest.mark.parametrize("case", qemu_models(), ids=lambda c: c[0])
def test_hello_spikes_other_models_in_qemu(subdir_build, case, tmp_path):
    _, model, x = case
    header = tmp_path / "model.h"
    write_c_header(model, header, x=x)
    _cmake(f"-DHELLO_SPIKES_MODEL_H={header}", str(subdir_build))
    _cmake("--build", str(subdir_build), "-j", "2")
    check_against_reference(run_in_qemu(subdir_build / "hello_spikes.elf"), model, x)


@qemu_test
def test_runtime_package_with_find_package_in_qemu(tmp_path):
    """The library built and installed on its own (cmake --install), then found by a consumer
    project with find_package(edgespike), for the emulated Cortex-M4."""
    lib, prefix, app = tmp_path / "lib", tmp_path / "prefix", tmp_path / "app"
    _cmake("-S", str(CORE), "-B", str(lib), f"-DCMAKE_TOOLCHAIN_FILE={TOOLCHAIN}",
           f"-DEDGESPIKE_NANOPB_DIR={_nanopb()}", "-DEDGESPIKE_WERROR=ON")
    _cmake("--build", str(lib), "-j", "2")
    _cmake("--install", str(lib), "--prefix", str(prefix))
    assert (prefix / "include" / "edgespike" / "edgespike.h").is_file()
    assert (prefix / "lib" / "cmake" / "edgespike" / "edgespikeConfig.cmake").is_file()
    model, x = qemu_models()[0][1:]
    header = tmp_path / "model.h"
    write_c_header(model, header, x=x)
    _cmake("-S", str(EXAMPLE), "-B", str(app), f"-DCMAKE_TOOLCHAIN_FILE={TOOLCHAIN}",
           "-DHELLO_SPIKES_FIND_PACKAGE=ON", f"-DCMAKE_PREFIX_PATH={prefix}",
           f"-DHELLO_SPIKES_MODEL_H={header}")
    _cmake("--build", str(app), "-j", "2")
    # the consumer linked the installed archive, not a fresh build of the sources
    assert not (app / "edgespike").exists()
    assert str(prefix / "lib" / "libedgespike.a") in (app / "hello_spikes.map").read_text()
    check_against_reference(run_in_qemu(app / "hello_spikes.elf"), model, x)
