"""Analysis of sweep results: Pareto fronts, hypervolume, ERF maps, ablation tables, rank correlations.

Every function here works on plain arrays / DataFrames / models and returns small frozen data
objects; ``analysis.plot`` draws figures only from those objects and ``reports`` assembles them.
"""
