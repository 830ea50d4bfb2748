"""``lab models``: list the presets, or show one preset's effective architecture."""

from __future__ import annotations

import argparse
import json

from ..config import config_id
from .build import build_model, get_config
from .presets import PRESETS


def variants_table(names: list[str]) -> str:
    """A Markdown table of presets: params, channel splits per stage, config id."""
    rows = ["| model | res | params | trainable | splits g/l/id per stage | config_id |", "|---|---|---|---|---|---|"]
    for name in names:
        cfg = get_config(name)
        m = build_model(cfg)
        total = sum(p.numel() for p in m.parameters())
        train = sum(p.numel() for p in m.parameters() if p.requires_grad)
        splits = " · ".join("/".join(str(v) for v in vars(s.mixer.split(s.dim)).values()) for s in cfg.stages)
        rows.append(f"| {name} | {cfg.img_size} | {total:,} | {train:,} | {splits} | {config_id(cfg)} |")
    return "\n".join(rows)


def _run(args: argparse.Namespace) -> int:
    if args.name:
        cfg = get_config(args.name)
        print(json.dumps({"config_id": config_id(cfg), "config": cfg.to_dict(), "effective": cfg.effective()},
                         indent=2))
    else:
        print(variants_table(PRESETS.names()))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list model presets or show one as JSON")
    p.add_argument("name", nargs="?", help="preset to show (omit to list all)")
    p.set_defaults(func=_run)
