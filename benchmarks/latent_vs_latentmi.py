#!/usr/bin/env python
"""mipipe's latent MI against the authors' package ``latentmi`` (Gowri et al. 2024) on the
same samples (issue 14).

Both train a cross-predictive autoencoder per variable (latent size 8, batch 512, lr 1e-4,
up to 300 epochs with patience 30, half the rows for validation) and then run KSG on the
latents of the validation half. latentmi returns bits (its KSG has base=2); this script
converts them to nats, mipipe's unit. For each D it draws the thesis's Gaussian family (beta = 2,
true MI known) with ``--seeds`` seeds and prints both estimates, their mean over seeds, and
the seconds per call, in one process.

``latentmi`` pins numpy < 2; installed with ``pip install latentmi --no-deps`` beside
mipipe's numpy 2 it runs once ``np.NaN`` (removed in numpy 2) is given back, which this
script does for the call. Not part of the test suite (minutes of CPU); skipped with a
message when latentmi is not installed.

Usage::

    .venv/bin/pip install latentmi --no-deps
    .venv/bin/python benchmarks/latent_vs_latentmi.py --d 2 10 --n 4000 --seeds 3
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import sys
import time

import numpy as np

from mipipe.synthetic.families import draw_sample
from mipipe.estimators import latent_mi


def _latentmi():
    try:
        from latentmi import lmi
    except ImportError as exc:
        print(f"latentmi is not installed ({exc}); pip install latentmi --no-deps", file=sys.stderr)
        return None
    if not hasattr(np, "NaN"):
        np.NaN = np.nan  # removed in numpy 2; latentmi 0.1.3 still uses it
    return lmi


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", type=int, nargs="+", default=[2, 10])
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args(argv)
    lmi = _latentmi()
    if lmi is None:
        return 0
    import torch

    torch.set_num_threads(1)
    print(f"# load average {os.getloadavg()[0]:.1f}; gaussian family, beta = 2, n = {args.n}; "
          "nats (seconds per call)")
    print("| D | true MI | seed | mipipe latent_mi | latentmi |")
    print("|---|---|---|---|---|")
    for d in args.d:
        ours, theirs = [], []
        for seed in range(args.seeds):
            sample = draw_sample("gaussian_beta", args.n, d, seed, beta=2.0)
            x, y, truth = sample.x, sample.y, float(sample.true_mi[d])
            t0 = time.perf_counter()
            a = latent_mi(x, y, latent_dim=8, seed=seed, threads=1).estimate
            ta = time.perf_counter() - t0
            np.random.seed(seed)
            torch.manual_seed(seed)
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):  # its per-epoch prints
                pmi = lmi.estimate(x, y, N_dims=8, quiet=True, device="cpu")[0]
            # latentmi's KSG (latentmi.ksg.mi, adapted from NPEET) returns pointwise MI in
            # bits (base=2); mipipe reports nats
            b = float(np.nanmean(pmi)) * math.log(2)
            tb = time.perf_counter() - t0
            ours.append(a)
            theirs.append(b)
            print(f"| {d} | {truth:.3f} | {seed} | {a:.3f} ({ta:.0f} s) | {b:.3f} ({tb:.0f} s) |",
                  flush=True)
        print(f"| {d} | {truth:.3f} | mean | {np.mean(ours):.3f} | {np.mean(theirs):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
