#!/usr/bin/env python
"""MI between the default run's embeddings by kNN, KSG1, k-sliced and latent MI (issue 14).

The thesis's Table 3 found kNN MI between 512-d embeddings hugely negative and unstable. This
reads the embeddings the pipeline wrote (``results/inference/embeddings/{encoder}.parquet``,
after ``snakemake --cores 2 inference``), and for the target victim against every other
encoder prints, per estimator, the MI (nats) on the first N images and the seconds it took,
in one process. Embeddings are normalised as in Table 3 (centred, divided by the Frobenius
norm; constant columns dropped) for every estimator. k-sliced MI is not I(V; S): it is the
mean MI over random 2-D projections of each embedding.

Usage::

    .venv/bin/python benchmarks/embedding_estimators.py                      # N = 300
    .venv/bin/python benchmarks/embedding_estimators.py --n 300 --target victim_tau0.2
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from mipipe.inference.mi import embedding_mi, read_embedding

ESTIMATORS = {
    "knn": {},
    "ksg1": {},
    "ksliced": {"dim": 2, "n_slices": 64, "seed": 0},
    "latent": {"latent_dim": 8, "seed": 0, "threads": 1},
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--embeddings", default="results/inference/embeddings")
    ap.add_argument("--target", default="victim_tau0.2")
    ap.add_argument("--n", type=int, default=300, help="first N embedded images")
    ap.add_argument("--estimators", nargs="+", default=list(ESTIMATORS), choices=list(ESTIMATORS))
    args = ap.parse_args(argv)
    folder = Path(args.embeddings)
    ref = read_embedding(folder / f"{args.target}.parquet")[: args.n]
    others = sorted(p.stem for p in folder.glob("*.parquet"))
    print(f"# load average {os.getloadavg()[0]:.1f}; target {args.target}, N = {len(ref)}, "
          f"d = {ref.shape[1]}; MI in nats (seconds)")
    print("| encoder | " + " | ".join(args.estimators) + " |")
    print("|---|" + "---|" * len(args.estimators))
    for name in others:
        z = read_embedding(folder / f"{name}.parquet")[: args.n]
        cells = []
        for est in args.estimators:
            t0 = time.perf_counter()
            try:
                mi = embedding_mi(ref, z, estimator=est, k=1 if est == "knn" else 3,
                                  **ESTIMATORS[est])
                cells.append(f"{mi:.3f} ({time.perf_counter() - t0:.1f} s)")
            except ValueError as exc:
                cells.append(f"failed: {exc}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
