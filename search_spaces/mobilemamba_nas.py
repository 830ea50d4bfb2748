"""MobileMamba NAS: which widths, depths and mixer settings give the best accuracy per FLOP?

Varies the macro architecture around the base preset (each stage's width on a grid of 16 from
half to 1.5x the base width, depth 1..3) together with the per-stage mixer: global ratio, local
ratio (0 disables the local branch; the local kernel is only sampled when it is on), local
kernel, and the SSM expansion ``ssm_ratio`` and state size ``d_state`` (tied across stages).
It answers: where does the official MobileMamba family sit relative to the accuracy/FLOPs and
accuracy/throughput fronts of its own design space, and which knobs move the front?
"""

from __future__ import annotations

from lab.search.space import Categorical, Cond, Int, Param, SearchSpace


def _width_range(dim: int) -> Int:
    lo = max(16, (dim // 2) // 16 * 16)
    hi = max(lo, (dim * 3 // 2) // 16 * 16)
    return Int(lo, hi, step=16)


def space(base: str = "mobilemamba_tiny", *, fixed: dict | None = None) -> SearchSpace:
    """The NAS space around ``base``'s stage widths."""
    from lab.models import get_config

    cfg = get_config(base)
    params: list[Param] = []
    for i, stage in enumerate(cfg.stages):
        params.append(Param(f"stages.{i}.dim", _width_range(stage.dim)))
        params.append(Param(f"stages.{i}.depth", Int(1, 3)))
        params.append(Param(f"stages.{i}.mixer.global_ratio", Categorical((0.5, 0.6, 0.7, 0.8))))
        params.append(Param(f"stages.{i}.mixer.local_ratio", Categorical((0.0, 0.1, 0.2))))
        params.append(
            Param(
                f"stages.{i}.mixer.local_kernels",
                Categorical(((3,), (5,), (7,), (3, 5, 7))),
                when=Cond(f"stages.{i}.mixer.local_ratio", ">", 0),
            )
        )
    params.append(Param("stages.*.mixer.ssm_ratio", Categorical((1.0, 1.5, 2.0))))
    params.append(Param("stages.*.mixer.d_state", Categorical((1, 2, 4, 8))))
    return SearchSpace(base=base, params=tuple(params), fixed=fixed or {}, description=__doc__.split("\n\n")[0])


SPACE = space()
