"""Experiments that reproduce the papers, and benchmarks of tfapprox.

Each script has ``main(argv) -> dict`` and a ``--quick`` mode that the tests
call. The experiments run as ``tfapprox experiment NAME`` (the package is
installed as ``tfapprox_analysis``, so a non-editable install carries them)
or as ``python -m analysis.NAME`` from the repository root; the benchmarks
as ``python -m analysis.bench_NAME``.

`EXPERIMENTS` names every experiment and the module that runs it. It is read
by ``tfapprox experiment list`` without importing the modules (which import
Keras).
"""

# name -> (module in this package, one-line description)
EXPERIMENTS = {
    "attention-rank": (
        "attention_rank",
        "training error vs the attention rank m_h and the learned spectrum (paper A Fig. 1)",
    ),
    "depth": (
        "depth",
        "L = 1-4 layers at a fixed parameter count, with and without DP, on Type II targets "
        "(paper B)",
    ),
    "fig5": (
        "fig5",
        "trained error vs m_h on targets of rank 2, 6 and inf: claims (a)-(c) (paper A Fig. 5)",
    ),
    "fig5-floor": (
        "fig5_floor",
        "fig5's budgets below the rank trained in rounds until twice the steps stop helping",
    ),
    "language-model": (
        "language_model",
        "character-level language model: layers vs heads, DP vs DP-free (paper B Tables 2, 7)",
    ),
    "mixing": (
        "mixing",
        "temporal mixing vs the POD spectrum; a TemporalConv in front (paper A Sec. 6, App. D.3)",
    ),
    "ordering": ("ordering", "RNN vs Transformer under reordering and mixing (paper A Tables 2-3)"),
    "position-bias": (
        "position_bias",
        "linear vs log RPE on heavy- and light-tailed memories, error vs heads (paper B Tables 8-9)",
    ),
    "permutation": (
        "permutation",
        "digits classifier on original vs permuted tokens: accuracy and β (paper A Table 1)",
    ),
    "sparse-memory": (
        "sparse_memory",
        "heads vs FFN width on fixed sparse memories, with and without DP (paper B Tables 3-6)",
    ),
}
