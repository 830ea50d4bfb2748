"""MRFFI ablation: which parts of the multi-receptive-field feature interaction module matter?

Varies, over a fixed backbone (widths and depths of the base preset), the design choices inside
the MRFFI token mixer: the number of wavelet levels of the WTE-Mamba branch per stage (0 = no
wavelet branch), the wavelet family (tied across stages, only when some stage uses wavelets in
stage 0), the local kernel set of each stage (one kernel = the official depthwise conv, several =
MK-DeConv), and the global/local channel ratios of each stage. It answers: how much accuracy
and speed does each MRFFI component buy at equal backbone, and do the official per-stage
choices (Haar, 1 level, kernels 7/5/3, ratios 0.8/0.2, 0.7/0.2, 0.6/0.3) sit on the front?
"""

from __future__ import annotations

from lab.search.space import Categorical, Cond, Param, SearchSpace

KERNEL_SETS = ((3,), (5,), (7,), (3, 5), (3, 5, 7), (1, 3, 5))
GLOBAL_RATIOS = (0.5, 0.6, 0.7, 0.8)
LOCAL_RATIOS = (0.1, 0.2, 0.3)  # pairs summing to > 1 are infeasible rows (never trained)


def space(base: str = "mobilemamba_tiny", *, stages: int = 3, fixed: dict | None = None) -> SearchSpace:
    """The MRFFI ablation space over ``base`` (which must have ``stages`` stages)."""
    params: list[Param] = []
    for i in range(stages):
        params.append(Param(f"stages.{i}.mixer.wavelet_levels", Categorical((0, 1, 2))))
    params.append(
        Param(
            "stages.0.mixer.wavelet_type",
            Categorical(("db1", "db2", "sym3")),
            tie=tuple(f"stages.{i}.mixer.wavelet_type" for i in range(1, stages)),
            when=Cond("stages.0.mixer.wavelet_levels", ">", 0),
        )
    )
    for i in range(stages):
        params.append(Param(f"stages.{i}.mixer.local_kernels", Categorical(KERNEL_SETS)))
        params.append(Param(f"stages.{i}.mixer.global_ratio", Categorical(GLOBAL_RATIOS)))
        params.append(Param(f"stages.{i}.mixer.local_ratio", Categorical(LOCAL_RATIOS)))
    return SearchSpace(base=base, params=tuple(params), fixed=fixed or {}, description=__doc__.split("\n\n")[0])


SPACE = space()
