#!/usr/bin/env python
"""Speed of the dataset-inference MI (mipipe.inference.mi) at the thesis's scale.

For N images embedded in d = 512 dimensions by two encoders (Gaussian stand-ins: z_ref, and
z_other = z_ref rotated plus noise), it times

* ``embedding_mi`` (normalisation + kNN MI, k = 1, p = 2), best of ``--reps``;
* ``permutation_test`` with M shuffles (fast path: marginal entropies once, each shuffle
  O(N^2) from the marginal distance matrices);
* the naive permutation test (``embedding_mi`` on every shuffled pair), timed on
  ``--naive`` shuffles and extrapolated to M (plus the observed estimate);

and checks that the fast null equals the naive estimates (max |difference|, nats), and that
I(V;V) equals :func:`mi_max_closed_form`.

Usage::

    .venv/bin/python benchmarks/dataset_inference.py                  # N = 2000, M = 99
    .venv/bin/python benchmarks/dataset_inference.py --n 2000 4000 8000 --naive 1

Timings on a shared machine vary with its load (printed).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from mipipe.inference.mi import (
    embedding_mi,
    mi_max_closed_form,
    permutation_test,
    permutations,
)


def _best(fn, reps):
    best, value = np.inf, None
    for _ in range(reps):
        t = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t)
    return best, value


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[2000])
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--m", type=int, default=99, help="permutations")
    ap.add_argument("--naive", type=int, default=3, help="shuffles timed for the naive test")
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    warm = rng.standard_normal((300, 8))
    permutation_test(warm, warm + rng.standard_normal((300, 8)), n_permutations=2)  # JIT/cache
    print(f"cores {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}, d = {args.d}, "
          f"M = {args.m}")
    print("| N | I(V;V) measured | closed form | embedding_mi s | fast test s | naive test s "
          "(extrapolated) | speed-up | max |fast - naive| (nats) |")
    print("|---|---|---|---|---|---|---|---|")
    for n in args.n:
        z = rng.standard_normal((n, args.d))
        q, _ = np.linalg.qr(rng.standard_normal((args.d, args.d)))
        other = z @ q + 0.5 * rng.standard_normal((n, args.d))
        t_mi, _ = _best(lambda z=z, o=other: embedding_mi(z, o), args.reps)
        vv = embedding_mi(z, z)
        t_fast, res = _best(lambda z=z, o=other: permutation_test(z, o, n_permutations=args.m), 1)
        perms = permutations(n, args.m, 0)[: args.naive]
        t0 = time.perf_counter()
        naive = [embedding_mi(z, other[p]) for p in perms]
        per_shuffle = (time.perf_counter() - t0) / max(len(perms), 1)
        t_naive = t_mi + args.m * per_shuffle
        diff = float(np.max(np.abs(np.array(naive) - res.null[: len(naive)]))) if naive else np.nan
        print(f"| {n} | {vv:.6f} | {mi_max_closed_form(n, args.d):.6f} | {t_mi:.2f} | "
              f"{t_fast:.2f} | {t_naive:.1f} | {t_naive / t_fast:.0f}x | {diff:.1e} |", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
