"""Three implementations, one answer: numpy reference, C core on the host, firmware in QEMU.

Random int8 and ternary models (1 to 4 layers, widths 1 to 512, random decays, thresholds,
biases, options, decodings) and random inputs must give identical spikes in every layer,
identical final u and v, identical counters and identical scores everywhere. The QEMU side is
the Cortex-M4 build of the same core, run by the semihosting runner (no link: the link has
its own hil/ suite).
"""
from __future__ import annotations


import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgespike import paths
from edgespike.sim import core, qemu, reference

from qemu_marks import needs_qemu
from strategies import inputs, models

pytestmark = needs_qemu(paths.runner_image, paths.host_library)


def assert_same(a, b, what: str) -> None:
    assert a.prediction == b.prediction, what
    assert np.array_equal(a.scores, b.scores), what
    for li, (sa, sb) in enumerate(zip(a.spikes, b.spikes)):
        assert np.array_equal(sa, sb), f"{what}: spikes of layer {li}"
    for li in range(len(a.u)):
        assert np.array_equal(a.u[li], b.u[li]), f"{what}: u of layer {li}"
        assert np.array_equal(a.v[li], b.v[li]), f"{what}: v of layer {li}"
        assert np.array_equal(a.th[li], b.th[li]), f"{what}: th of layer {li}"
    for li, (ca, cb) in enumerate(zip(a.counters, b.counters)):
        assert (ca.input_events, ca.synops, ca.neuron_updates, ca.spikes) == (
            cb.input_events, cb.synops, cb.neuron_updates, cb.spikes), f"{what}: counters of layer {li}"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.data_too_large])
@given(data=st.data())
def test_reference_host_core_and_firmware_agree(data) -> None:
    model = data.draw(models(max_layers=4, max_width=512, max_input=256, max_timesteps=16))
    x = data.draw(inputs(model, batch=2))
    ref = reference.run_batch(model, x)
    host = core.run_batch(model, x)
    m4 = qemu.run_batch(model, x)
    for i, (r, h, q) in enumerate(zip(ref, host, m4)):
        assert_same(h, r, f"host core vs reference, input {i}")
        assert_same(q, r, f"QEMU firmware vs reference, input {i}")
        assert q.cycle_source == "qemu_icount" and q.cycles > 0


def test_widest_layers_agree() -> None:
    """The 512-wide corner, deterministically: two dense 512x512 layers, one ternary."""
    rng = np.random.default_rng(7)
    from edgespike.model import Layer, Model, Neurons, Weights

    w0 = rng.integers(-128, 128, (512, 512)).astype(np.int8)
    codes = rng.integers(-1, 2, (512, 512)).astype(np.int8)
    model = Model(input_size=512, timesteps=4, layers=[
        Layer(Weights(w0, exp=-6), Neurons(du=300, dv=200, vth=300, bias_mant=-20)),
        Layer(Weights(codes, encoding="ternary", a_pos=9, a_neg=11, exp=-2), Neurons(du=4096, dv=100, vth=50)),
    ]).validate()
    x = (rng.random((2, 4, 512)) < 0.2).astype(np.uint8)
    for r, q in zip(reference.run_batch(model, x), qemu.run_batch(model, x)):
        assert_same(q, r, "512-wide")
        assert sum(c.synops for c in q.counters) > 10_000
