"""Proxy hyper-parameters: which training recipe ranks architectures reliably at low cost?

Varies the proxy recipe of a fixed network: the peak learning rate (log scale), the weight
decay (log scale), the label smoothing and the network's stochastic-depth rate ``drop_path``.
It answers: how sensitive is the proxy's accuracy to the recipe, and which setting should the
architecture sweeps use so that their ranking reflects the architecture and not an unlucky lr?
"""

from __future__ import annotations

from lab.search.space import Float, LogFloat, Param, SearchSpace


def space(base: str = "mobilemamba_tiny", *, fixed: dict | None = None) -> SearchSpace:
    """The recipe space for the network ``base``."""
    params = (
        Param("recipe.lr", LogFloat(1e-4, 1e-2)),
        Param("recipe.weight_decay", LogFloat(1e-3, 0.2)),
        Param("recipe.label_smoothing", Float(0.0, 0.2)),
        Param("drop_path", Float(0.0, 0.2)),
    )
    return SearchSpace(base=base, params=params, fixed=fixed or {}, description=__doc__.split("\n\n")[0])


SPACE = space()
