"""The stm32f4 port (firmware/ports/stm32f4) booted in QEMU's netduinoplus2 (STM32F405).

One end-to-end check through the SDK, as a user would run it (``--board netduinoplus2``): the
emulator starts, the firmware's ready banner comes, Hello reports the board's facts and its
128 KB-sized limits, a small model is deployed in several chunks, and every run equals
``edgespike.sim.reference`` (prediction, scores, per-layer counters, output spikes) with
instruction counts from the SysTick fallback (QEMU has no DWT); then a short paced stream
(2 ms per step) runs every step on time, which needs the port's TIM2 wake-up to work under
QEMU (uart.c). The full protocol and streaming suite on this board:
``python -m pytest hil --board netduinoplus2``.

Needs ``bash firmware/build.sh`` (build/stm32f4) and qemu-system-arm; skips saying why.
"""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgespike import paths
from edgespike.errors import ToolMissing
from edgespike.model import Layer, Model, Neurons, Weights, to_bytes
from edgespike.sim import reference


def small_model() -> Model:
    rng = np.random.default_rng(11)
    layers = []
    for i, (a, b) in enumerate(((20, 24), (24, 8))):
        w = rng.integers(-90, 100, (a, b)).astype(np.int8)
        w[rng.random((a, b)) < 0.3] = 0
        layers.append(Layer(weights=Weights(w, exp=-2), name=f"fc{i}",
                            neurons=Neurons(du=512 * (i + 1), dv=300, vth=40 + 10 * i,
                                            bias_mant=2)))
    return Model(name="f4-small", input_size=20, timesteps=10, layers=layers)


def _elf_or_skip() -> Path:
    if shutil.which("qemu-system-arm") is None:
        pytest.skip("qemu-system-arm not installed (apt-get install qemu-system-arm)")
    try:
        return paths.firmware_image("netduinoplus2")
    except ToolMissing as exc:
        pytest.skip(str(exc))


@pytest.mark.qemu
def test_netduinoplus2_boots_deploys_and_runs_like_the_reference() -> None:
    elf = _elf_or_skip()
    # The raw image for flashing a real board sits next to the ELF.
    assert elf.with_suffix(".bin").stat().st_size > 0

    from edgespike.device import open_device

    model = small_model()
    rng = np.random.default_rng(3)
    xs = (rng.random((3, model.timesteps, model.input_size)) < 0.3).astype(np.uint8)
    refs = reference.run_batch(model, xs)
    with open_device(board="netduinoplus2", timeout=10.0) as dev:
        info = dev.hello()
        assert (info.board, info.core, info.clock_hz) == ("netduinoplus2", "cortex-m4",
                                                          168_000_000)
        assert info.cycle_source == "qemu_icount"  # QEMU emulates no DWT: SysTick fallback
        assert 0 < info.flash_bytes < 1 << 20 and 0 < info.ram_bytes <= 128 << 10
        assert info.model_capacity_bytes >= len(to_bytes(model))
        # several chunks, so the upload path (and the RX ring) is exercised
        dev.deploy(model, chunk_bytes=256)
        assert dev.hello().model_loaded
        for k, (x, ref) in enumerate(zip(xs, refs)):
            out = dev.run(x, record_spikes=(k == 0))
            assert out.prediction == ref.prediction
            assert out.scores.tolist() == ref.scores.tolist()
            for d, r in zip(out.counters, ref.counters):
                assert (d.input_events, d.synops, d.neuron_updates, d.spikes) == \
                       (r.input_events, r.synops, r.neuron_updates, r.spikes)
            if k == 0:
                assert np.array_equal(out.spikes[-1], ref.spikes[-1])
            assert out.cycle_source == "qemu_icount"
            assert 0 < sum(c.cycles for c in out.counters) <= out.cycles
        stats = dev.stats()
        assert stats.runs == 3 and stats.rx_overruns == 0 and stats.frames_bad_crc == 0

        # Paced: the device sleeps (WFI) until each step is due; 8 steps a batch keeps its
        # 2-batch queue 160 ms ahead of the host, so a step more than a period (10 ms) late is
        # the device's doing (a timer that fires late), not a busy host descheduling QEMU for a
        # few ms (2 ms steps stalled with three trainings sharing 2 cores).
        x = (rng.random((64, model.input_size)) < 0.3).astype(np.uint8)
        s = dev.stream(x, free_run=False, step_us=10000, batch_steps=8, window=8, hop=8)
        got = list(s)
        assert len(got) == 8 and s.stats.device_steps == 64
        assert s.stats.device_stalls == 0


@pytest.mark.qemu
def test_netduinoplus2_max_outputs_holds_for_late_spikes() -> None:
    """Issue 12, case 6: the port advertised 1,024 output spike events, but a RunResult with
    recorded spikes late in the run (5 bytes each from step 4096 on) did not fit its
    4,224-byte frame: the device answered ERR_INTERNAL and did not count it in errors_sent.
    Now max_outputs is what fits at the worst-case encoding (firmware/link/es_link.h), and
    the run is answered, cut there, with spikes_truncated."""
    _elf_or_skip()
    from edgespike.device import open_device

    vectors = Path(__file__).resolve().parents[1] / "protocol" / "vectors" / "generate.py"
    spec = importlib.util.spec_from_file_location("es_vectors_generate", vectors)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    model = gen.late_spikes_model()
    x = reference.spikes_from_events(np.array(gen.late_spikes_events(), dtype=np.uint32),
                                     model.timesteps, model.input_size)
    ref = reference.run(model, x)
    ref_events = reference.events_from_spikes(ref.spikes[-1])
    with open_device(board="netduinoplus2", timeout=20.0) as dev:
        info = dev.hello()
        assert (info.max_frame_bytes, info.max_outputs) == (4224, 255)
        assert len(ref_events) > info.max_outputs  # 2,560 spikes, all at steps >= 4096
        dev.deploy(model)
        before = dev.stats()
        out = dev.run(x, record_spikes=True)
        assert out.spikes_truncated
        assert out.output_events.tolist() == ref_events[:info.max_outputs].tolist()
        assert out.prediction == ref.prediction and out.scores.tolist() == ref.scores.tolist()
        assert [c.spikes for c in out.counters] == [c.spikes for c in ref.counters]
        after = dev.stats()
        assert after.errors_sent == before.errors_sent and after.runs == before.runs + 1
