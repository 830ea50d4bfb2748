"""``make demo``: the lab's main job. For now: build the six official variants and print their table.

(The sweep issue replaces this with a small multi-objective NAS on the synthetic dataset.)
"""

from __future__ import annotations

from .models.cli import variants_table
from .models.presets import OFFICIAL_VARIANTS


def main() -> int:
    print("MobileMamba Lab: the six official variants, rebuilt from typed configs\n")
    print(variants_table(list(OFFICIAL_VARIANTS)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
