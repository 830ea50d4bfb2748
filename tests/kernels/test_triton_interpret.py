"""The Triton kernels on CPU, under the Triton interpreter, in a subprocess (no env leak)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import kernels.selective_scan as ss

pytest.importorskip("triton")

HERE = Path(__file__).resolve().parent
TOL = 1e-5


@pytest.fixture(scope="module")
def interpreter_results() -> list[dict]:
    env = {**os.environ, "TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(HERE / "triton_interpret_check.py")],
        env=env, cwd=HERE.parents[1], capture_output=True, text=True, timeout=540,
    )  # fmt: skip
    assert proc.returncode == 0, f"interpreter run failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def test_kernels_were_interpreted(interpreter_results) -> None:
    first = interpreter_results[0]
    expected = ["auto", "ref", "torch", "triton"] + (["numba"] if ss.numba_importable() else [])
    assert first == {"check": "interpreting", "value": True, "cpu_backends": expected}


def test_triton_matches_float64_reference_fp32_and_fp64(interpreter_results) -> None:
    checks = [r for r in interpreter_results if r["check"] in ("fp32", "fp64")]
    assert len(checks) == 7
    for r in checks:
        assert r["errors"].keys() >= {"y", "u", "delta", "A", "B", "C"}, r
        bad = {k: v for k, v in r["errors"].items() if not v < (TOL if r["check"] == "fp32" else 1e-12)}
        assert not bad, f"{r['check']} {r['case']}: {bad}"


def test_triton_half_inputs_and_strides(interpreter_results) -> None:
    by_check = {r["check"]: r for r in interpreter_results}
    for dtype in ("torch.float16", "torch.bfloat16"):
        assert by_check[dtype]["dtype_ok"], dtype
        assert by_check[dtype]["error"] < 1e-2, by_check[dtype]
    assert by_check["non_contiguous"]["error"] < TOL


def test_interpreter_setting_does_not_leak_into_this_process() -> None:
    """The subprocess had TRITON_INTERPRET=1; this process must not (the library never sets it)."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("the test session itself runs with TRITON_INTERPRET=1")
    from kernels.selective_scan import triton as scan_triton

    assert "TRITON_INTERPRET" not in os.environ
    assert not scan_triton.interpreting()
    assert "triton" not in ss.available_backends("cpu")
    u = torch.zeros(1, 2, 3)
    args = (u, u, -torch.ones(2, 1), torch.zeros(1, 1, 1, 3), torch.zeros(1, 1, 1, 3))
    with pytest.raises(ValueError, match="needs CUDA tensors.*backend='torch'.*TRITON_INTERPRET=1"):
        ss.selective_scan(*args, backend="triton")


def test_library_code_never_sets_triton_interpret() -> None:
    for path in (HERE.parents[1] / "kernels").rglob("*.py"):
        text = path.read_text()
        assert "os.environ[\"TRITON_INTERPRET\"]" not in text and "putenv" not in text, path
        assert "setdefault(\"TRITON_INTERPRET\"" not in text, path
