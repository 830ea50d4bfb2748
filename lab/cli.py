"""The ``lab`` command: one entry point, one sub-command module per area.

Each area module exposes ``register(subparsers)`` which adds its sub-command and sets
``func`` on the parser; modules are imported lazily so ``lab --help`` stays fast and a
missing optional dependency only breaks its own sub-command.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# (sub-command, module providing `register(subparsers)`); add one line per area.
SUBCOMMANDS: list[tuple[str, str]] = [
    ("models", "lab.models.cli"),
    ("report", "reports.cli"),
    ("measure", "lab.measure.cli"),
    ("data", "lab.data.cli"),
]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only`` (a known sub-command) just that area's module is imported."""
    parser = argparse.ArgumentParser(prog="lab", description="MobileMamba Lab: architecture ablation and NAS.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in SUBCOMMANDS:
        if only is None or name == only:
            importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    first = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(first if first in dict(SUBCOMMANDS) else None)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as exc:  # user errors: one clear line, no traceback
        print(f"lab {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
