"""``edgespike demo --quick`` end to end on the emulated Cortex-M4 (the CI setting): trains,
quantizes, deploys over the link, runs the whole (reduced) test set on the device, and its
report's device accuracy equals the host reference's for every variant."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from edgespike import paths
from qemu_marks import needs_qemu

pytest.importorskip("torch")

pytestmark = needs_qemu(paths.firmware_image)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[int, dict, Path]:
    from edgespike.cli import main

    out = tmp_path_factory.mktemp("demo")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["demo", "--quick", "--json", "--out", str(out)])
    return rc, json.loads(buf.getvalue()), out


def test_quick_demo_device_accuracy_equals_host(demo) -> None:
    rc, rep, _ = demo
    assert rc == 0
    assert rep["dataset"] == "basic_motions" and rep["setting"] == "quick"
    assert rep["device_equals_host"] is True
    assert [v["variant"] for v in rep["variants"]] == ["int8", "ternary"]
    for v in rep["variants"]:
        p = v["profile"]
        assert v["accuracy_device"] == v["accuracy_reference"] == p["accuracy_device"]
        assert p["accuracy_equal"] is True and p["predictions_equal"] is True
        assert p["counters_vs_reference"]["equal"] is True
        assert v["exact_quantized_vs_reference"] is True   # torch integer model == reference
        assert p["inferences"] == rep["test_samples"] == 40
        assert p["counters"]["cycle_source"] == "qemu_icount" and p["counters"]["cycles"] > 0
        assert v["accuracy_device"] > 0.5                   # 4 classes: far above chance
        targets = {e["target"]: e for e in p["energy"]}
        assert {"stm32l4", "stm32h7", "nrf52840", "loihi2", "spinnaker2",
                "horowitz45-fp32", "horowitz45-int"} <= set(targets)
        assert all(e["uj"] > 0 for e in p["energy"])
        assert targets["stm32l4"]["ratio"] == pytest.approx(
            targets["stm32l4"]["uj"] / targets["stm32l4"]["ann_uj"])
        if p["cycle_estimate"] is not None:   # cycles with their range beside the instructions
            m4 = p["cycle_estimate"]["cores"]["cortex-m4"]
            assert m4["instructions"] == p["counters"]["cycles"]
            assert p["device_cycles"] == m4["cycles"]
            for name in ("stm32l4", "stm32h7", "nrf52840"):
                e = targets[name]
                assert e["cycle_kind"] == "estimated cycles"
                assert e["uj_low"] <= e["uj"] <= e["uj_high"]
            assert targets["stm32l4"]["cycles"] == m4["cycles"]["central"]
        assert p["ann"]["passes"] == rep["timesteps"]       # a time series: one pass per step
    assert rep["float_accuracy"] > 0.5


def test_quick_demo_writes_its_artefacts(demo) -> None:
    from edgespike.model import load

    _, rep, out = demo
    report = json.loads((out / "report.json").read_text())
    assert report["device_equals_host"] is True
    for v in rep["variants"]:
        model = load(v["blob"])
        assert model.layers[0].weights.encoding == v["variant"]
        assert (out / f"basic_motions-{v['variant']}-test.npz").exists()
        assert v["profile"]["output_spikes_equal"] is True
    pytest.importorskip("matplotlib")
    for name in ("raster.png", "energy_per_layer_int8.png", "energy_per_layer_ternary.png",
                 "accuracy_vs_energy.png"):
        assert (out / name).stat().st_size > 1000, name
