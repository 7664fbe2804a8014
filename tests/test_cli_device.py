"""The device verbs of the CLI: help texts, run on the reference, --json, and a fake device."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgespike.cli import main
from edgespike.device.fake import FakeDevice
from edgespike.model import save
from edgespike.sim import reference

VECTORS = Path(__file__).resolve().parents[1] / "protocol" / "vectors"
_spec = importlib.util.spec_from_file_location("es_vectors_generate", VECTORS / "generate.py")
gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen)


@pytest.mark.parametrize("verb", [["emulator"], ["emulator", "start"], ["emulator", "stop"],
                                  ["info"], ["deploy"], ["run"]])
def test_help_teaches_with_an_example(verb, capsys):
    with pytest.raises(SystemExit) as info:
        main(verb + ["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out and "edgespike" in out


def test_console_script_help_runs():
    r = subprocess.run([sys.executable, "-m", "edgespike.cli", "run", "--help"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "--backend" in r.stdout


@pytest.fixture
def files(tmp_path):
    model = gen.small_model()
    mpath = save(model, tmp_path / "small.bin")
    xs = np.random.default_rng(3).integers(0, 2, (5, 6, 4)).astype(np.uint8)
    labels = np.array([1, 0, 1, 1, 0])
    np.save(tmp_path / "one.npy", xs[0])
    np.savez(tmp_path / "set.npz", inputs=xs, labels=labels)
    return model, mpath, xs, labels, tmp_path


@pytest.mark.parametrize("backend", [None, "reference", "batch"])
def test_run_host_json(files, capsys, backend):
    """Without a device, run uses the batched simulator; every host simulator gives the
    reference's predictions, scores and counters."""
    model, mpath, xs, labels, tmp = files
    extra = ["--backend", backend] if backend else []
    assert main(["run", str(mpath), str(tmp / "set.npz"), "--json", *extra]) == 0
    obj = json.loads(capsys.readouterr().out)
    refs = reference.run_batch(model, xs)
    assert obj["backend"] == (backend or "batch") and obj["n"] == 5
    assert [r["prediction"] for r in obj["results"]] == [r.prediction for r in refs]
    assert [r["scores"] for r in obj["results"]] == [r.scores.tolist() for r in refs]
    expected_acc = float((np.array([r.prediction for r in refs]) == labels).mean())
    assert obj["accuracy"] == pytest.approx(expected_acc)
    assert [[la["synops"] for la in r["layers"]] for r in obj["results"]] == \
        [[c.synops for c in r.counters] for r in refs]


def test_run_reference_human_table(files, capsys):
    model, mpath, xs, labels, tmp = files
    assert main(["run", str(mpath), str(tmp / "one.npy")]) == 0
    out = capsys.readouterr().out
    pred = reference.run(model, xs[0]).prediction
    assert f"prediction {pred}" in out and "synops" in out and "hidden" in out


def test_run_limit_and_bad_input(files, capsys):
    model, mpath, xs, labels, tmp = files
    assert main(["run", str(mpath), str(tmp / "set.npz"), "--limit", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 2
    np.save(tmp / "wrong.npy", np.zeros((3, 6, 5), dtype=np.uint8))
    assert main(["run", str(mpath), str(tmp / "wrong.npy")]) == 1
    assert "InputError" in capsys.readouterr().err
    assert main(["run", str(mpath), str(tmp / "missing.npy")]) == 1


def test_missing_backend_is_a_clear_error(files, capsys, monkeypatch):
    import edgespike.backends as backends

    model, mpath, xs, labels, tmp = files
    # a back-end whose module is absent (as pynn is on a machine without PyNN)
    monkeypatch.setitem(backends._REGISTRY, "pynn", ("edgespike.backends._absent_for_test",
                                                      "pip install pyNN nest-simulator"))
    assert main(["run", str(mpath), str(tmp / "one.npy"), "--backend", "pynn"]) == 1
    err = capsys.readouterr().err
    assert "ToolMissing" in err and "pip install pyNN" in err and "Traceback" not in err


def test_backend_registry():
    from edgespike.backends import NAMES, get_backend
    from edgespike.errors import ToolMissing

    assert {"reference", "core", "lava", "pynn"} <= set(NAMES)
    ref = get_backend("reference")
    assert ref.name == "reference" and ref.available()
    model, x = gen.small_model(), gen.small_input()
    assert ref.run_batch(model, x[None])[0].scores.tolist() == reference.run(model, x).scores.tolist()
    with pytest.raises(ToolMissing, match="unknown back-end"):
        get_backend("abacus")


def test_device_verbs_on_a_fake_device(files, capsys):
    model, mpath, xs, labels, tmp = files
    with FakeDevice() as fake:
        assert main(["info", "--port", fake.url, "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["info"]["board"] == "fake" and info["info"]["model_loaded"] is False
        assert main(["deploy", str(mpath), "--port", fake.url, "--json"]) == 0
        dep = json.loads(capsys.readouterr().out)
        assert dep["skipped"] is False and dep["model_loaded"] is True
        assert dep["blob_bytes"] == mpath.stat().st_size
        assert main(["deploy", str(mpath), "--port", fake.url]) == 0
        assert "already on fake" in capsys.readouterr().out
        assert main(["run", str(mpath), str(tmp / "set.npz"), "--port", fake.url, "--json",
                     "--record-spikes"]) == 0
        run = json.loads(capsys.readouterr().out)
        refs = reference.run_batch(model, xs)
        assert run["backend"] == "device" and run["board"] == "fake"
        assert [r["scores"] for r in run["results"]] == [r.scores.tolist() for r in refs]
        assert run["results"][0]["output_spikes"] == \
            reference.events_from_spikes(refs[0].spikes[-1]).tolist()
        assert main(["info", "--port", fake.url]) == 0
        assert "model_loaded" in capsys.readouterr().out


def test_port_with_host_backend_is_refused(files, capsys):
    model, mpath, xs, labels, tmp = files
    assert main(["run", str(mpath), str(tmp / "one.npy"), "--port", "socket://127.0.0.1:1",
                 "--backend", "reference"]) == 1
    assert "--backend device" in capsys.readouterr().err
