"""PlatformIO pre-build script (see ../platformio.ini): generate the nanopb code into gen/.

Runs ``nanopb_generator`` (PyPI ``nanopb==0.4.7``) on protocol/edgespike.proto with
protocol/edgespike.options, as the CMake build does; skipped when gen/ is newer than both.
"""
import os
import subprocess
import sys

try:
    Import("env")  # type: ignore[name-defined]  # noqa: F821 - provided by PlatformIO (SCons)
    FIRMWARE = env.subst("$PROJECT_DIR")  # type: ignore[name-defined]  # noqa: F821
except NameError:  # run by hand: python cmake/pio_generate.py
    FIRMWARE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROTOCOL = os.path.join(os.path.dirname(FIRMWARE), "protocol")
GEN = os.path.join(FIRMWARE, "gen")
sources = [os.path.join(PROTOCOL, n) for n in ("edgespike.proto", "edgespike.options")]
target = os.path.join(GEN, "edgespike.pb.c")
if not os.path.exists(target) or os.path.getmtime(target) < max(map(os.path.getmtime, sources)):
    os.makedirs(GEN, exist_ok=True)
    subprocess.check_call([sys.executable, "-m", "nanopb.generator.nanopb_generator", "-q",
                           "-D", GEN, "-f", sources[1], "edgespike.proto"], cwd=PROTOCOL)
