"""Fuzzing kept in the repo: a short libFuzzer run of every harness of firmware/fuzz/ (link
receive path, model parser + one inference, stream path; ASan + UBSan), then the C-versus-SDK
verdict check (tests/blob_mutations.py) on every blob of the model corpus the run grew.

scripts/fuzz.sh runs the same harnesses for as long as asked; README.md, "Fuzzing".
"""
from __future__ import annotations

import shutil
import struct
import subprocess

import pytest

from blob_mutations import disagreement, rehash
from edgespike.paths import REPO_ROOT

SECONDS = 40  # per target; two at a time: about 2 minutes with the build

pytestmark = pytest.mark.skipif(
    shutil.which("clang") is None,
    reason="clang not installed, the libFuzzer harnesses need it "
           "(apt-get install clang libclang-rt-14-dev; scripts/setup.sh installs both)")


@pytest.fixture(scope="module")
def fuzz_run(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("corpus")
    proc = subprocess.run(
        ["bash", "scripts/fuzz.sh", "--seconds", str(SECONDS), "--jobs", "2", "--corpus", str(corpus)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    return proc, corpus


def test_every_harness_runs_without_a_finding(fuzz_run) -> None:
    proc, _ = fuzz_run
    assert proc.returncode == 0, proc.stdout + proc.stderr[-6000:]
    rows = {}
    for line in proc.stdout.splitlines()[1:]:
        cells = line.split()
        if cells and cells[0] in ("link", "model", "stream"):
            rows[cells[0]] = cells
    assert set(rows) == {"link", "model", "stream"}, proc.stdout
    for target, (_, seconds, execs, rate, edges, corpus, result) in rows.items():
        assert result == "ok", rows[target]
        assert int(execs) > 1000 and int(edges) > 300 and int(corpus) > 10, rows[target]


def test_model_corpus_gets_one_verdict_from_c_and_sdk(fuzz_run) -> None:
    _, corpus = fuzz_run
    files = sorted((corpus / "model").iterdir()) + sorted(
        (REPO_ROOT / "build" / "fuzz" / "seeds" / "model").iterdir())
    assert len(files) > 50
    bad = []
    for path in files:
        data = path.read_bytes()
        if len(data) < 2:
            continue
        length = struct.unpack("<H", data[:2])[0]  # as fuzz_model.c reads it
        body = data[2:2 + (length & 0x7FFF)]
        why = disagreement(body if length & 0x8000 else rehash(body))
        if why:
            bad.append(f"{path.name}: {why}")
    assert not bad, f"{len(bad)} of {len(files)} corpus blobs disagree:\n" + "\n".join(bad[:20])
