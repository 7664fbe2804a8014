"""edgespike.profile: counters (from rasters, summaries, against the reference), the report, and
``edgespike profile`` against the emulated Cortex-M4."""
from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgespike import paths
from edgespike.errors import ToolMissing
from edgespike.model import save
from edgespike.profile import build, counters_from_spikes, format_report, load_targets, summarize
from edgespike.profile.counters import compare_counters
from edgespike.sim import reference
from edgespike.sim.reference import RunOutput

from qemu_marks import needs_qemu
from strategies import inputs, models



@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.data_too_large])
@given(data=st.data())
def test_counters_from_spike_rasters_equal_the_reference_counters(data) -> None:
    """The rules used for back-ends that return only rasters give the reference's counts."""
    model = data.draw(models(max_layers=3, max_width=64, max_input=64, max_timesteps=12))
    x = data.draw(inputs(model, batch=2))
    for xi, out in zip(x, reference.run_batch(model, x)):
        derived = counters_from_spikes(model, xi, out.spikes)
        assert [(c.input_events, c.synops, c.neuron_updates, c.spikes) for c in derived] == [
            (c.input_events, c.synops, c.neuron_updates, c.spikes) for c in out.counters]


def _sample():
    from edgespike.model.samples import digits_templates

    s = digits_templates(weights="int8")
    return s.model, s.inputs[:12], s.labels[:12]


def test_summary_means_and_derivation_from_rasters() -> None:
    model, x, _ = _sample()
    ref = reference.run_batch(model, x)
    summ = summarize(model, ref, "reference", x)
    assert not summ.derived and summ.inferences == len(x)
    assert summ.synops == pytest.approx(np.mean([sum(c.synops for c in o.counters) for o in ref]))
    assert summ.neuron_updates == model.timesteps * model.neuron_count
    # a back-end that returns rasters but no counters: derived, same numbers
    bare = [replace(o, counters=[]) for o in ref]
    derived = summarize(model, bare, "lava", x)
    assert derived.derived
    assert [la.synops for la in derived.layers] == [la.synops for la in summ.layers]
    assert [la.spikes for la in derived.layers] == [la.spikes for la in summ.layers]
    # ... and one with neither cannot be counted
    with pytest.raises(ValueError, match="no counters"):
        summarize(model, [RunOutput(prediction=0, scores=np.zeros(10))], "spinnaker2", x[:1])


def test_compare_counters_finds_a_difference() -> None:
    model, x, _ = _sample()
    ref = reference.run_batch(model, x[:3])
    other = reference.run_batch(model, x[:3])
    assert compare_counters(other, ref, "same").equal
    other[1].counters[0].synops += 1
    check = compare_counters(other, ref, "changed")
    assert not check.equal and "input 1, layer 0" in check.mismatches[0]


def test_report_from_finished_runs() -> None:
    """No device: the reference's outputs stand in for a device with DWT cycles."""
    model, x, y = _sample()
    ref = reference.run_batch(model, x)
    dev = reference.run_batch(model, x)
    for k, o in enumerate(dev):
        for li, c in enumerate(o.counters):
            c.cycles = 1000 * (li + 1) + k
        o.cycles, o.cycle_source = 5000, "dwt"
    targets = load_targets()
    bare = [replace(o, counters=[]) for o in ref]
    r = build(model, x, dev, ref, targets, board="test", core="cortex-m4", clock_hz=50_000_000,
              labels=y, backend_out=bare, backend="pynn")
    assert r.accuracy_equal and r.predictions_equal and r.counters_vs_reference.equal
    assert r.latency_ms == pytest.approx(5000 / 50e6 * 1e3)
    by = {e.target: e for e in r.energy}
    assert by["stm32l4"].uj == pytest.approx(5000 * 300e-6)
    assert by["stm32l4"].latency_ms == pytest.approx(5000 / 80e6 * 1e3)
    assert by["stm32l4"].ann_uj == pytest.approx(r.ann.cycles * 300e-6)  # DWT: ANN in cycles
    syn = r.neuromorphic_counts.synops
    upd = r.neuromorphic_counts.neuron_updates
    spk = r.neuromorphic_counts.spikes
    assert r.neuromorphic_counts.derived
    assert by["loihi2"].uj == pytest.approx((syn * 23.6 + upd * 52.0 + spk * 1.7) * 1e-6)
    assert by["horowitz45-fp32"].ratio == pytest.approx(syn * 0.9 / (r.ann.macs * 4.6))
    assert any("derived from its spike rasters" in n for n in r.notes)
    text = format_report(r)
    assert re.search(r"device accuracy == host accuracy +yes", text) and "loihi2" in text
    # a device without a cycle figure: no MCU energy, and the report says why
    for o in dev:
        o.cycle_source = "none"
    r2 = build(model, x, dev, ref, targets, board="test", core="", clock_hz=0)
    assert {e.kind for e in r2.energy} == {"per_op"} and r2.latency_ms is None
    assert any("stm32l4: no cycle figure" in n for n in r2.notes)


class TestOnTheEmulatedBoard:
    pytestmark = needs_qemu(paths.firmware_image)

    def test_device_counters_equal_the_reference_exactly(self) -> None:
        from edgespike.device import open_device
        from edgespike.profile import profile_device

        model, x, y = _sample()
        with open_device(board="mps2-an386") as dev:
            r, dev_out, ref_out = profile_device(model, x, dev, load_targets(), labels=y)
        assert r.counters_vs_reference.equal, r.counters_vs_reference.mismatches
        for d, ref in zip(dev_out, ref_out):
            assert [(c.input_events, c.synops, c.neuron_updates, c.spikes) for c in d.counters] == [
                (c.input_events, c.synops, c.neuron_updates, c.spikes) for c in ref.counters]
        assert r.accuracy_device == r.accuracy_reference
        assert r.counters.cycle_source == "qemu_icount" and r.counters.cycles > 0
        assert r.core == "cortex-m4" and r.clock_hz > 0
        by = {e.target: e for e in r.energy}
        est = r.cycle_estimate
        if est is None:  # no block-trace plugin: instructions at one cycle each, and why
            assert r.cycle_estimate_note
            assert r.latency_ms == pytest.approx(r.counters.cycles / r.clock_hz * 1e3)
            assert by["stm32l4"].uj == pytest.approx(r.counters.cycles * 300e-6)
            assert by["stm32l4"].ann_uj == pytest.approx(r.ann.instructions * 300e-6)
        else:            # estimated cycles of the device's exact instruction count
            m4 = est.cores["cortex-m4"]
            assert m4.instructions == r.counters.cycles
            assert 1.0 < m4.cpi.low <= m4.cpi.central <= m4.cpi.high < 3.0
            assert r.latency_ms == pytest.approx(m4.cycles.central / r.clock_hz * 1e3)
            assert by["stm32l4"].uj == pytest.approx(m4.cycles.central * 300e-6)
            assert by["stm32l4"].uj_low <= by["stm32l4"].uj <= by["stm32l4"].uj_high
            assert by["stm32l4"].ann_uj == pytest.approx(
                r.ann_cycles["cortex-m4"].cycles.central * 300e-6)
            assert by["stm32h7"].cycles == est.cores["cortex-m7"].cycles.central
            assert set(est.cores) == {"cortex-m0", "cortex-m4", "cortex-m7", "cortex-m33"}
            assert est.hotspots and est.hotspots_core == "cortex-m4"
        assert r.memory.blob_bytes > r.memory.weight_bytes > 0

    def test_estimate_traces_the_path_the_device_ran(self) -> None:
        """A values model fed the same image at every step: the SDK sends it once
        (Run.static_input) and the device computes the first layer once; the estimate traces
        the same path, so the traced instruction count matches the device's (up to the
        output spikes the device copies into its answer)."""
        from edgespike.device import open_device
        from edgespike.model import Layer, Model, Neurons, Weights
        from edgespike.profile import profile_device

        rng = np.random.default_rng(5)
        model = Model(input_size=24, timesteps=6, input_kind="values", input_max_abs=100,
                      layers=[Layer(Weights(rng.integers(-60, 60, (24, 16)).astype(np.int8),
                                            exp=-6), Neurons(du=4096, dv=300, vth=40))]
                      ).validate()
        x = np.repeat(rng.integers(-100, 101, (3, 1, 24)), 6, axis=1)
        with open_device(board="mps2-an386") as dev:
            r, _, _ = profile_device(model, x, dev, load_targets(), cores=["cortex-m4"])
        if r.cycle_estimate is None:
            pytest.skip(r.cycle_estimate_note)
        assert not any("the traced run counted" in n for n in r.notes), r.notes
        assert r.cycle_estimate.cores["cortex-m4"].instructions == r.counters.cycles

    def test_cli_profile_json_and_plots(self, tmp_path, capsys) -> None:
        from edgespike.cli import main

        model, x, y = _sample()
        blob = save(model, tmp_path / "m.esm")
        np.savez(tmp_path / "in.npz", inputs=x[:6], labels=y[:6])
        rc = main(["profile", str(blob), str(tmp_path / "in.npz"), "--board", "mps2-an386",
                   "--backend", "reference", "--json", "--plot", str(tmp_path / "plots"),
                   "--only", "stm32l4", "loihi2", "--cores", "cortex-m4"])
        rep = json.loads(capsys.readouterr().out)
        assert rc == 0
        if rep["cycle_estimate"] is not None:   # instructions, estimated cycles and uJ from them
            m4 = rep["cycle_estimate"]["cores"]["cortex-m4"]
            assert list(rep["cycle_estimate"]["cores"]) == ["cortex-m4"]
            assert m4["instructions"] == rep["counters"]["cycles"]
            assert m4["cycles"]["low"] <= m4["cycles"]["central"] <= m4["cycles"]["high"]
            l4 = rep["energy"][0]
            assert l4["cycle_kind"] == "estimated cycles" and l4["cycles"] == m4["cycles"]["central"]
            assert l4["uj_low"] <= l4["uj"] <= l4["uj_high"]
        assert rep["inferences"] == 6 and rep["accuracy_equal"] is True
        assert rep["neuromorphic_counts"]["source"] == "reference"
        assert [e["target"] for e in rep["energy"]] == ["stm32l4", "loihi2"]
        pytest.importorskip("matplotlib")
        assert (tmp_path / "plots" / "raster.png").stat().st_size > 1000
        assert (tmp_path / "plots" / "energy_per_layer.png").stat().st_size > 1000


@pytest.mark.parametrize("name", ["lava", "pynn", "core", "batch"])
def test_backend_counts_for_the_neuromorphic_targets(name: str) -> None:
    """Counts from a back-end's run (Lava's bit-accurate Loihi 2 models, PyNN, the C core)
    equal the reference's, and price the per-op targets."""
    from edgespike.profile.report import run_backend

    model, x, y = _sample()
    try:
        out = run_backend(name, model, x[:4])
    except ToolMissing as exc:
        pytest.skip(str(exc))
    ref = reference.run_batch(model, x[:4])
    r = build(model, x[:4], ref, ref, load_targets(), board="host", core="", clock_hz=0,
              labels=y[:4], backend_out=out, backend=name)
    assert r.neuromorphic_counts.source == name
    got = [(la.synops, la.spikes) for la in r.neuromorphic_counts.layers]
    want = [(la.synops, la.spikes) for la in r.counters.layers]
    if name == "pynn":  # NEST's float arithmetic: spikes within the back-end's tolerance
        assert np.allclose(got, want, rtol=0.05)
    else:               # bit-accurate back-ends: exactly the reference's counts
        assert got == want


@pytest.mark.parametrize("host_sim", ["batch", "reference", "core"])
def test_profile_on_a_fake_device_with_each_host_simulator(host_sim: str) -> None:
    """The expected results come from the chosen exact host simulator (the batched one by
    default); every choice gives the same report, and an unknown one is refused."""
    from edgespike.device import Device
    from edgespike.device.fake import FakeDevice
    from edgespike.errors import InputError
    from edgespike.profile import profile_device

    model, x, y = _sample()
    try:
        with FakeDevice() as fake, Device.open(fake.url) as dev:
            r, dev_out, ref_out = profile_device(model, x, dev, load_targets(), labels=y,
                                                 host_sim=host_sim)
            with pytest.raises(InputError, match="host simulator"):
                profile_device(model, x, dev, load_targets(), host_sim="numpy")
    except ToolMissing as exc:
        pytest.skip(str(exc))
    assert r.counters_vs_reference.equal and r.predictions_equal
    assert any(f"host simulator '{host_sim}'" in n for n in r.notes)
    for got, want in zip(ref_out, reference.run_batch(model, x)):
        assert got.counters == want.counters and got.prediction == want.prediction


@pytest.mark.parametrize("host_sim", ["batch", "reference"])
def test_parity_on_a_fake_device_with_each_host_simulator(host_sim: str) -> None:
    from edgespike import parity
    from edgespike.device import Device
    from edgespike.device.fake import FakeDevice
    from edgespike.errors import InputError

    model, x, y = _sample()
    with FakeDevice() as fake, Device.open(fake.url) as dev:
        r = parity.check(model, x[:6], dev, y[:6], host_sim=host_sim)
        with pytest.raises(InputError, match="host simulator"):
            parity.check(model, x[:2], dev, host_sim="numpy")
    assert r.agree_device_reference and r.agree_core_reference is not False
    assert r.host_sim == host_sim and not r.mismatches
