"""Run the Triton backend under the Triton interpreter on CPU and print one JSON line per check.

Not a pytest module: ``test_triton_interpret.py`` runs it in a subprocess whose environment has
``TRITON_INTERPRET=1``. Triton 3.x reads that variable when ``@triton.jit`` decorates a kernel,
i.e. when ``kernels.selective_scan.triton`` is first imported, and the choice then sticks for the
life of the process; a subprocess keeps it from leaking into other tests.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE)]

import torch  # noqa: E402
from scan_testlib import SMALL_CASES, Case, compare, make_inputs, rel_err  # noqa: E402

import kernels.selective_scan as ss  # noqa: E402


def main() -> int:
    if os.environ.get("TRITON_INTERPRET") != "1":
        print(json.dumps({"check": "setup", "error": "run me with TRITON_INTERPRET=1 in the environment"}))
        return 2
    from kernels.selective_scan import triton as scan_triton

    print(json.dumps({"check": "interpreting", "value": scan_triton.interpreting(),
                      "cpu_backends": ss.available_backends("cpu")}))
    # Small sequence tiles, so the carry between tiles is exercised on these short sequences.
    scan_triton.MAX_BLOCK_L = 8
    for i, case in enumerate(SMALL_CASES):
        errors = compare(case, backend="triton", seed=100 + i)
        print(json.dumps({"check": "fp32", "case": str(case), "errors": errors}))
    errors = compare(Case(2, 2, 3, 2, 11), backend="triton", seed=7, dtype=torch.float64)
    print(json.dumps({"check": "fp64", "case": "b2g2x3n2L11", "errors": errors}))

    # Half inputs: output in the input dtype, close to the reference on the same rounded inputs.
    for dtype in (torch.float16, torch.bfloat16):
        inputs = [t.to(dtype) for t in make_inputs(Case(1, 2, 2, 1, 9), seed=3)]
        expected = ss.selective_scan_ref(*[t.double() for t in inputs[:6]], delta_bias=inputs[6].double())
        y = ss.selective_scan(*inputs[:6], delta_bias=inputs[6], backend="triton")
        print(json.dumps({"check": str(dtype), "dtype_ok": y.dtype == dtype, "error": rel_err(y, expected)}))

    # Non-contiguous inputs are made contiguous by the wrapper.
    u, delta, A, B, C, D, bias = make_inputs(Case(2, 2, 2, 1, 5), seed=9, dtype=torch.float32)
    expected = ss.selective_scan(u, delta, A, B, C, D, delta_bias=bias, backend="ref")
    y = ss.selective_scan(u.transpose(0, 2).contiguous().transpose(0, 2), delta, A, B, C, D, delta_bias=bias,
                          backend="triton")
    print(json.dumps({"check": "non_contiguous", "error": rel_err(y, expected)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
