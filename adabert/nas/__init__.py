"""Differentiable architecture search of AdaBERT (one concept per module, DARTS style).

* ``ops``: the candidate operations, as data (``OPS[name](width)``), mask-aware.
* ``genotype``: the derived architecture (``Genotype`` <-> versioned JSON) and ``derive_genotype``.
* ``cell``: the search cell (all ops on every edge) and the fixed, derived cell.
* ``supernet``: embedding + K_max search cells + per-depth read-outs, Gumbel sampling helpers.
* ``costs``: measured per-op parameter / FLOP costs for the efficiency loss.
* ``losses``: (1 - gamma) CE + gamma KD (probe + final) + beta L_E, depth-weighted.
* ``search``: the search stage (``run_search``); ``derive``: the derive stage (``run_derive``).

The deployable network built from a genotype lives in ``adabert.student``.
"""
