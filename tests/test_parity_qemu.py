"""Three implementations, one answer: numpy reference, C core on the host, firmware in QEMU.

Random int8 and ternary models (1 to 4 layers, widths 1 to 512, random decays, thresholds,
biases, options, decodings) and random inputs must give identical spikes in every layer,
identical final u and v, identical counters and identical scores everywhere. The QEMU side is
the Cortex-M4 build of the same core, run by the semihosting runner (no link: the link has
its own hil/ suite), once with the DSP kernels and once with the portable C kernels built for
the same core. Deterministic cases reach the kernels' pass boundaries (more than 256 active
rows, 15 and 255 ternary rows, more than 64 input pairs) and every block width.
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


@pytest.mark.parametrize("kernels", ["default", "plain"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.data_too_large])
@given(data=st.data())
def test_reference_host_core_and_firmware_agree(kernels, data) -> None:
    model = data.draw(models(max_layers=4, max_width=512, max_input=256, max_timesteps=16))
    x = data.draw(inputs(model, batch=2))
    ref = reference.run_batch(model, x)
    host = core.run_batch(model, x)
    m4 = qemu.run_batch(model, x, kernels=kernels)
    for i, (r, h, q) in enumerate(zip(ref, host, m4)):
        assert_same(h, r, f"host core vs reference, input {i}")
        assert_same(q, r, f"QEMU firmware ({kernels} kernels) vs reference, input {i}")
        assert q.cycle_source == "qemu_icount" and q.cycles > 0


def _plain_layer(rng, fan_in: int, fan_out: int, encoding: str, bound: int = 1):
    from edgespike.model import Layer, Neurons, Weights
    from strategies import largest_exp

    if encoding == "int8":
        w = Weights(rng.integers(-128, 128, (fan_in, fan_out)).astype(np.int8))
    else:
        w = Weights(rng.integers(-1, 2, (fan_in, fan_out)).astype(np.int8), encoding="ternary",
                    a_pos=int(rng.integers(1, 256)), a_neg=int(rng.integers(1, 256)))
    w.exp = largest_exp(w, bound, 1 << 17)
    return Layer(w, Neurons(du=4096, dv=410, vth=rng.integers(0, 300, fan_out)))


@pytest.mark.parametrize("kernels", ["default", "plain"])
@pytest.mark.parametrize("encoding", ["int8", "ternary"])
def test_kernel_pass_boundaries_agree(kernels, encoding) -> None:
    """Spike inputs with up to 600 active rows (int16 lanes widen every 256 rows, ternary
    nibbles every 15 and bytes every 255) into layers of every block shape (1..3, 4..15, 16+
    neurons, a 128-neuron chunk boundary), and a static direct input over more than 64 pairs
    of rows."""
    from edgespike.model import Model

    rng = np.random.default_rng(11)
    for fan_out in (1, 3, 4, 5, 8, 12, 15, 17, 130):
        model = Model(input_size=600, timesteps=3, layers=[
            _plain_layer(rng, 600, fan_out, encoding)]).validate()
        x = np.zeros((3, 3, 600), dtype=np.uint8)
        x[0] = 1                                   # 600 rows every step
        x[1, :, :255] = 1                          # exactly 255 rows
        x[2, 0, :16], x[2, 1, 300:315], x[2, 2, :257] = 1, 1, 1  # 15: counted in nibbles only
        for i, (r, q) in enumerate(zip(reference.run_batch(model, x),
                                       qemu.run_batch(model, x, kernels=kernels))):
            assert_same(q, r, f"{encoding} 600x{fan_out}, input {i}")
    for fan_out in (2, 7, 130):
        model = Model(input_size=301, timesteps=4, input_kind="values", input_max_abs=127,
                      layers=[_plain_layer(rng, 301, fan_out, encoding, bound=127),
                              _plain_layer(rng, fan_out, 9, encoding)]).validate()
        x = rng.integers(-127, 128, (2, 4, 301)).astype(np.int32)
        x[0] = x[0, :1]                            # static
        x[1, :, ::3] = 0                           # zero rows skipped, odd pairs
        for i, (r, q) in enumerate(zip(reference.run_batch(model, x),
                                       qemu.run_batch(model, x, kernels=kernels))):
            assert_same(q, r, f"{encoding} values 301x{fan_out}, input {i}")


@pytest.mark.parametrize("static", [True, False])
def test_static_input_runs_the_first_layer_once(static) -> None:
    """A still image sent once (static) or at every step gives the same answer; sent once,
    the first layer's work is done once per inference, so it costs fewer instructions."""
    from edgespike.model import Model

    rng = np.random.default_rng(3)
    model = Model(input_size=64, timesteps=8, input_kind="values", input_max_abs=127, layers=[
        _plain_layer(rng, 64, 128, "int8", bound=127), _plain_layer(rng, 128, 10, "int8")]).validate()
    x = np.repeat(rng.integers(0, 128, (2, 1, 64)), 8, axis=1).astype(np.int32)
    out = qemu.run_batch(model, x, static=static)
    for r, q in zip(reference.run_batch(model, x), out):
        assert_same(q, r, f"static={static}")
    if static:
        per_step = qemu.run_batch(model, x, static=False)
        assert all(a.cycles < b.cycles for a, b in zip(out, per_step))


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
