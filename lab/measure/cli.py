"""``lab measure MODEL_OR_CONFIG [...]``: params, FLOPs, throughput/latency, memory as a table,
JSON lines (``--json``: one object per model on stdout) or CSV (``--csv PATH``).

A model is a lab preset, a timm model name, or a JSON file holding a ``ModelConfig``
(``ModelConfig.to_dict()`` or the ``lab models NAME`` output with its ``config`` key).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

from .throughput import PRECISIONS


def load_model_arg(text: str) -> Any:
    """A preset/timm name as is, or the ``ModelConfig`` stored in a ``.json`` file."""
    if not text.endswith(".json"):
        return text
    path = Path(text)
    if not path.is_file():
        raise FileNotFoundError(f"config file {text} does not exist")
    from lab.config import ModelConfig

    data = json.loads(path.read_text())
    if isinstance(data, dict) and isinstance(data.get("config"), dict):
        data = data["config"]
    try:
        return ModelConfig.from_dict(data)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{text} is not a ModelConfig JSON ({exc}); write one with ModelConfig.to_dict()") from None


def _fmt_count(v: Any, scale: float = 1e6, digits: int = 2) -> str:
    return "-" if v is None else f"{v / scale:.{digits}f}"


def _fmt(v: Any, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def format_table(rows: list[dict[str, Any]]) -> str:
    """Aligned plain-text table; FLOPs in M (multiply-add = 1), params in M."""
    head = ["model", "res", "params M", "train M", "fused M", "MFLOPs paper", "MFLOPs full", "unsupported",
            "img/s med [min-max]", "lat ms", "mem MB", "train mem MB"]
    body = []
    for r in rows:
        tput = "-"
        if r.get("throughput") is not None:
            tput = f"{r['throughput']:.1f} [{r['throughput_min']:.1f}-{r['throughput_max']:.1f}] @bs{r['batch']}"
        unsupported = r.get("unsupported_ops")
        body.append([
            str(r["model"]), str(r["res"]), _fmt_count(r.get("params"), digits=3),
            _fmt_count(r.get("params_trainable"), digits=3), _fmt_count(r.get("params_fused"), digits=3),
            _fmt_count(r.get("flops"), digits=1), _fmt_count(r.get("flops_full"), digits=1),
            "-" if unsupported is None else (", ".join(f"{k}x{v}" for k, v in unsupported.items()) or "none"),
            tput, _fmt(r.get("latency_ms"), 2), _fmt(r.get("peak_mem_mb")), _fmt(r.get("peak_mem_train_mb")),
        ])
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in [head, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def flatten(row: dict[str, Any]) -> dict[str, Any]:
    """One level of nesting for CSV: ``env.torch`` -> ``env_torch``; lists/dicts below become JSON."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, dict) and k in ("env", "protocol", "step_ms"):
            for kk, vv in v.items():
                out[f"{k}_{kk}"] = json.dumps(vv) if isinstance(vv, (list, dict)) else vv
        else:
            out[k] = json.dumps(v, sort_keys=True) if isinstance(v, (list, dict)) else v
    return out


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    flat = [flatten(r) for r in rows]
    fields: list[str] = []
    for r in flat:
        fields += [k for k in r if k not in fields]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(flat)


def _run(args: argparse.Namespace) -> int:
    from .api import measure
    from .cache import MeasureCache

    what = ["params", "flops"]
    if not args.no_timing:
        what += ["memory", "throughput"]
    cache = None if args.no_cache else MeasureCache(args.cache_dir)
    protocol = {
        "batch": args.batch, "warmup": args.warmup, "iters": args.iters, "latency_warmup": args.latency_warmup,
        "latency_iters": args.latency_iters, "threads": args.threads, "precision": args.precision,
        "fused": not args.no_fuse, "channels_last": args.channels_last, "compile": args.compile,
    }
    rows = []
    for name in args.models:
        row = measure(load_model_arg(name), res=args.res, what=what, device=args.device,
                      num_classes=args.num_classes, cache=cache, train_memory=not args.no_train_memory, **protocol)
        rows.append(row)
        if args.json:
            print(json.dumps(row, sort_keys=False), flush=True)
    if not args.json:
        print(format_table(rows))
        if any(r.get("unsupported_ops") for r in rows):
            print("warning: some ops had no FLOP counter and were counted as 0 (see 'unsupported')", file=sys.stderr)
    if args.csv:
        write_csv(rows, Path(args.csv))
    return 0


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def _non_negative(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {v}")
    return v


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "measure",
        help="params, FLOPs (paper convention + full), throughput/latency, memory of models",
        description="Measure lab presets, timm models or ModelConfig JSON files. FLOPs: multiply-add = 1; "
        "'paper' = the official fvcore convention, 'full' = plus what it skips. Timing follows timm's "
        "benchmark.py protocol (defaults: GPU bs 256, 50+20 steps; CPU bs 16, 5+10 steps, 1 thread).",
    )
    p.add_argument("models", nargs="+", metavar="MODEL_OR_CONFIG", help="preset / timm name / ModelConfig .json")
    p.add_argument("--res", type=_positive, default=None, help="input resolution (default: the model's native one)")
    p.add_argument("--num-classes", type=_non_negative, default=None, help="classifier classes (default: model's)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    p.add_argument("--precision", choices=PRECISIONS, default=None, help="fp32 (default), amp-bf16, amp-fp16 (CUDA)")
    p.add_argument("--batch", type=_positive, default=None, help="throughput batch (default 256 GPU / 16 CPU)")
    p.add_argument("--warmup", type=_non_negative, default=None, help="untimed warm-up steps (50 GPU / 5 CPU)")
    p.add_argument("--iters", type=_positive, default=None, help="timed steps (20 GPU / 10 CPU)")
    p.add_argument("--latency-warmup", type=_non_negative, default=None, help="warm-up steps at batch 1")
    p.add_argument("--latency-iters", type=_positive, default=None, help="timed steps at batch 1")
    p.add_argument("--threads", type=_positive, default=None, help="torch threads while timing (CPU default 1)")
    p.add_argument("--no-fuse", action="store_true", help="time the unfused model (BN not folded)")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (warm-up includes compiling)")
    p.add_argument("--no-timing", action="store_true", help="only params and FLOPs (no throughput/latency/memory)")
    p.add_argument("--no-train-memory", action="store_true", help="skip the training-step memory measurement")
    p.add_argument("--json", action="store_true", help="print one JSON object per model to stdout")
    p.add_argument("--csv", default=None, metavar="PATH", help="also write the rows as CSV")
    p.add_argument("--cache-dir", default=".cache/measure", help="measurement cache dir (default .cache/measure)")
    p.add_argument("--no-cache", action="store_true", help="measure again, do not read or write the cache")
    p.set_defaults(func=_run)
