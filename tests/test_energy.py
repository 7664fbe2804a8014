"""Energy arithmetic against hand-computed cases, the built-in targets, user TOML targets, and
the ANN baseline's instruction counts."""
from __future__ import annotations

import numpy as np
import pytest

from edgespike.errors import InputError
from edgespike.model import Layer, Model, Neurons, Weights
from edgespike.profile import ann, energy
from edgespike.profile.energy import Target, evaluate, load_targets

MCU = Target(name="m", kind="mcu", source="test", clock_hz=80e6, voltage_v=3.0, ua_per_mhz=100.0)
CHIP = Target(name="c", kind="per_op", source="test", synop_pj=23.6, neuron_update_pj=52.0,
              spike_pj=1.7, mac_pj=4.6)


def test_mcu_energy_per_cycle_is_voltage_times_current_per_mhz() -> None:
    # 100 uA/MHz = 100 pC per cycle; at 3.0 V that is 300 pJ per cycle, whatever the clock
    assert MCU.pj_per_cycle == pytest.approx(300.0)
    r = evaluate(MCU, cycles=[600_000, 400_000], synops=[], neuron_updates=[], spikes=[],
                 ann_cycles=500_000)
    assert r.uj == pytest.approx(300.0)                 # 1e6 cycles x 300 pJ = 300 uJ
    assert r.per_layer_uj == pytest.approx([180.0, 120.0])
    assert r.latency_ms == pytest.approx(12.5)          # 1e6 cycles / 80 MHz
    assert r.ann_uj == pytest.approx(150.0)             # 5e5 cycles x 300 pJ
    assert r.ratio == pytest.approx(2.0)


def test_mcu_total_cycles_include_work_outside_the_layers() -> None:
    r = evaluate(MCU, cycles=[100.0, 100.0], synops=[], neuron_updates=[], spikes=[],
                 total_cycles=1000.0)
    assert r.uj == pytest.approx(1000 * 300e-6)
    assert sum(r.per_layer_uj) == pytest.approx(200 * 300e-6)
    assert r.ratio is None and r.ann_uj is None


def test_per_op_energy_hand_computed() -> None:
    # 1000 SynOps x 23.6 + 200 updates x 52 + 10 spikes x 1.7 = 23600 + 10400 + 17 = 34017 pJ
    r = evaluate(CHIP, cycles=[], synops=[600, 400], neuron_updates=[100, 100], spikes=[10, 0],
                 ann_macs=10_000)
    assert r.uj == pytest.approx(0.034017)
    assert r.per_layer_uj == pytest.approx([(600 * 23.6 + 100 * 52 + 10 * 1.7) * 1e-6,
                                            (400 * 23.6 + 100 * 52) * 1e-6])
    assert r.ann_uj == pytest.approx(10_000 * 4.6e-6)
    assert r.ratio == pytest.approx(0.034017 / 0.046)
    assert r.not_counted == []
    assert r.latency_ms is None


def test_unpublished_figures_are_not_counted_and_said_so() -> None:
    t = Target(name="s", kind="per_op", source="test", synop_pj=10.0)
    r = evaluate(t, cycles=[], synops=[1000], neuron_updates=[500], spikes=[7])
    assert r.uj == pytest.approx(1000 * 10e-6)
    assert r.not_counted == ["neuron updates", "spikes"]
    assert r.ann_uj is None and r.ratio is None


def test_builtin_targets_are_complete_and_cited() -> None:
    targets = load_targets()
    for name in ("stm32l4", "stm32h7", "nrf52840", "loihi2", "spinnaker2", "horowitz45-fp32",
                 "horowitz45-int"):
        assert name in targets, name
        assert len(targets[name].source) > 30, f"{name} needs a real citation"
    assert targets["stm32l4"].pj_per_cycle == pytest.approx(3.0 * 100.0)
    assert targets["nrf52840"].pj_per_cycle == pytest.approx(3.0 * 51.6)
    assert targets["stm32l4"].core == "cortex-m4" and targets["stm32h7"].core == "cortex-m7"
    # the TOML table and the named constants of energy.py agree
    assert targets["horowitz45-fp32"].synop_pj == pytest.approx(energy.HOROWITZ_FP32_AC_PJ)
    assert targets["horowitz45-fp32"].mac_pj == pytest.approx(energy.HOROWITZ_FP32_MAC_PJ)
    assert targets["horowitz45-int"].synop_pj == pytest.approx(energy.HOROWITZ_INT_AC_PJ)
    assert targets["horowitz45-int"].mac_pj == pytest.approx(energy.HOROWITZ_INT_MAC_PJ)
    assert energy.HOROWITZ_FP32_MAC_PJ == pytest.approx(4.6)
    assert targets["loihi2"].synop_pj == pytest.approx(23.6)
    assert targets["loihi2"].neuron_update_pj == pytest.approx(52.0)
    assert "Davies" in targets["loihi2"].source and "Horowitz" in targets["horowitz45-int"].source


def test_user_toml_adds_and_overrides_targets(tmp_path) -> None:
    f = tmp_path / "mine.toml"
    f.write_text('[myboard]\nkind = "mcu"\nclock_hz = 48_000_000\nvoltage_v = 1.8\n'
                 'ua_per_mhz = 30.0\nsource = "my datasheet, table 5"\n\n'
                 '[loihi2]\nkind = "per_op"\nsynop_pj = 1.0\nsource = "my measurement"\n')
    t = load_targets(f)
    assert t["myboard"].pj_per_cycle == pytest.approx(54.0)
    assert t["loihi2"].synop_pj == 1.0 and t["loihi2"].neuron_update_pj is None
    assert "stm32l4" in t
    assert list(load_targets(f, builtin=False)) == ["myboard", "loihi2"]


@pytest.mark.parametrize("text, what", [
    ('[x]\nkind = "mcu"\nsource = "s"\nclock_hz = 1\nvoltage_v = 3.0\n', "ua_per_mhz"),
    ('[x]\nkind = "per_op"\nsynop_pj = 1.0\n', "source"),
    ('[x]\nkind = "gpu"\nsource = "s"\n', "kind"),
    ('[x]\nkind = "per_op"\nsource = "s"\nsynop_pj = 1.0\nwatts = 3\n', "unknown keys"),
    ('[x\n', "not valid TOML"),
])
def test_bad_targets_are_refused_with_the_reason(tmp_path, text: str, what: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(InputError, match=what):
        load_targets(f)


def test_cmsis_nn_cost_is_the_measured_figure() -> None:
    """The ANN baseline is CMSIS-NN as measured on the same emulator (issue 11): a measured
    network gets its measured figure exactly, every other one the fit, which stays within
    0.6 % of every measured network."""
    from edgespike.model import Layer, Model, Neurons, Weights

    for shape, measured in ann.CMSIS_NN_MEASURED.items():
        fitted = sum(ann.dense_cost(k, n)[1] for k, n in zip(shape[:-1], shape[1:]))
        assert fitted == pytest.approx(measured, rel=0.006), shape
        layers = [Layer(Weights(np.ones((k, n), np.int8), exp=-12), Neurons())
                  for k, n in zip(shape[:-1], shape[1:])]
        m = Model(input_size=shape[0], timesteps=3, layers=layers).validate()
        b = ann.ann_baseline(m, passes=3)
        assert b.instructions == pytest.approx(3 * measured)
        assert "this network measured" in b.source
    # 8 -> 4 from the fit: 32 MACs of whole groups, 4 outputs, one layer
    macs, instr, cyc = ann.dense_cost(8, 4)
    assert macs == 32 and instr == pytest.approx(1.873 * 32 + 50.45 * 4 + 198.5)
    assert cyc == pytest.approx(instr * 19 / 15)
    assert ann.CMSIS_NN_INSTR_PER_MAC == pytest.approx(1.875)
    assert ann.CMSIS_NN_CYCLES_PER_MAC_M4 == pytest.approx(2.375)


def _model(recurrent: bool = False, timesteps: int = 5) -> Model:
    rng = np.random.default_rng(0)
    rec = Weights(rng.integers(-3, 4, (16, 16)).astype(np.int8), exp=-2) if recurrent else None
    return Model(input_size=8, timesteps=timesteps, input_kind="values", input_max_abs=7, layers=[
        Layer(Weights(rng.integers(-5, 6, (8, 16)).astype(np.int8), exp=-2), Neurons(vth=10),
              recurrent=rec),
        Layer(Weights(rng.integers(-5, 6, (16, 4)).astype(np.int8), exp=-2), Neurons(vth=10)),
    ]).validate()


def test_ann_passes_follow_the_input() -> None:
    m = _model()
    static = np.repeat(np.arange(8)[None, None, :], 5, axis=1)  # same frame at every step
    moving = np.arange(40).reshape(1, 5, 8) % 7
    b1 = ann.ann_baseline(m, static)
    bt = ann.ann_baseline(m, moving)
    assert b1.passes == 1 and bt.passes == 5
    assert b1.macs == 8 * 16 + 16 * 4
    assert bt.macs == 5 * b1.macs and bt.instructions == pytest.approx(5 * b1.instructions)
    assert ann.ann_baseline(m, moving, passes=2).macs == 2 * b1.macs
    assert b1.cost("qemu_icount") == b1.instructions and b1.cost("dwt") == b1.cycles
    rec = ann.ann_baseline(_model(recurrent=True), static)
    assert rec.macs == b1.macs + 16 * 16
