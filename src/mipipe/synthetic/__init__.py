"""The synthetic stage (rules/synthetic.smk): data with known mutual information and the
benchmark experiments on it.

- :mod:`mipipe.synthetic.families`: the thesis's four families (§4.1), samples and analytic MI.
- :mod:`mipipe.synthetic.tasks`: the benchmark tasks of Czyż et al. (2023), by bmi's task ids.
- :mod:`mipipe.synthetic.experiments`: estimator grids, runs, aggregation, failure rows.
- :mod:`mipipe.synthetic.plotting`: the sweep, convergence and task-suite figures.

``mipipe.distributions``, ``mipipe.experiments`` and ``mipipe.plotting`` remain importable
(they are the same module objects as the ones here).
"""
