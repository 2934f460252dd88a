#!/usr/bin/env python
"""Time of the estimators past the kNN collapse (issue 14) beside KSG1, in one process.

Data: x ~ N(0, I_d), y = 0.8 x + 0.6 e (d = 10 + 10 by default, n = 10^4), true MI
-(d/2) log(1 - 0.64) = 5.11 nats. Every estimator gets one untimed warm-up call on 300 rows
(numba compilation / cache load, thread pools), then one timed call (``--repeats`` for more,
best reported) on the full data; the table gives seconds, process CPU seconds and the ratio
to KSG1 (k = 3, p = inf, ``method="auto"``) measured in the same process, and each estimate
with its own truth (the sliced ones: the exact Gaussian slice average over the drawn
directions, which is not I(X; Y)).

The neural ones run a fixed number of epochs (``--epochs``, default 20) so that the time is
per a stated amount of training: CLUB (h = 30, batches of 3334 rows, the thesis's MINE
protocol) and latent MI at the paper's architecture (L = 1024) and at the default config's
reduced one (L = 64); latent MI's early stopping can end sooner.

``--latentmi`` also runs the authors' package ``latentmi`` (0.1.3, installed with
``pip install --no-deps --target DIR latentmi`` and found through ``--latentmi DIR``) and
mipipe's ``latent_mi`` with the same settings on a 2-signal-dimension example in 40 + 40
dimensions, and prints both estimates (the package's bits converted to nats).

Usage::

    .venv/bin/python benchmarks/scale.py                 # n = 10^4, d = 10 + 10
    .venv/bin/python benchmarks/scale.py --n 3000 --epochs 5
    .venv/bin/python benchmarks/scale.py --only latentmi --latentmi /tmp/lmi
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import time

import numpy as np

RHO = 0.8


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn, repeats):
    best = None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), cpu()
        out = fn()
        wall, cs = time.perf_counter() - t0, cpu() - c0
        if best is None or wall < best[0]:
            best = (wall, cs, out)
    return best


def cases(x, y, epochs, n_slices, k_slices):
    from mipipe import estimators as e

    return {
        "ksg1 (k=3, p=inf)": lambda a, b: e.ksg_mi(a, b, k=3),
        "cca": e.cca_mi,
        f"sliced ({n_slices} slices, KSG1 k=3)": lambda a, b: e.sliced_mi(
            a, b, n_slices=n_slices),
        f"ksliced (dim 2, {k_slices} frames)": lambda a, b: e.ksliced_mi(
            a, b, dim=2, n_slices=k_slices),
        "max_sliced (CCA directions + KSG1)": e.max_sliced_mi,
        f"club (h=30, b=3334, {epochs} epochs)": lambda a, b: e.club_mi(
            a, b, epochs=epochs, lr=0.005, threads=os.cpu_count()).estimate,
        f"latent (L=1024 paper, <= {epochs} epochs)": lambda a, b: e.latent_mi(
            a, b, epochs=epochs, threads=os.cpu_count()).estimate,
        f"latent (L=64, lr 1e-3, <= {epochs} epochs)": lambda a, b: e.latent_mi(
            a, b, width=64, lr=1e-3, epochs=epochs, threads=os.cpu_count()).estimate,
    }


def truths(d, n_slices, k_slices):
    from mipipe import estimators as e

    cov = np.block([[np.eye(d), RHO * np.eye(d)], [RHO * np.eye(d), np.eye(d)]])
    s1 = e.gaussian_sliced_mi(cov, d, *e.slice_frames(d, d, n_slices, 1, 0)).mean()
    s2 = e.gaussian_sliced_mi(cov, d, *e.slice_frames(d, d, k_slices, 2, 0)).mean()
    return {"sliced": s1, "ksliced": s2, "max_sliced": e.gaussian_max_sliced_mi(cov, d)}


def speed(args):
    rng = np.random.default_rng(0)
    d = args.d
    x = rng.standard_normal((args.n, d))
    y = RHO * x + math.sqrt(1 - RHO**2) * rng.standard_normal((args.n, d))
    mi = -d / 2 * math.log(1 - RHO**2)
    print(f"n = {args.n}, d = {d} + {d}, true MI {mi:.3f} nats; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    own = truths(d, args.slices, args.frames)
    rows, base = [], None
    for name, fn in cases(x, y, args.epochs, args.slices, args.frames).items():
        fn(x[:300], y[:300])
        wall, cs, est = timed(lambda f=fn: f(x, y), args.repeats)
        base = base or wall
        truth = next((v for k, v in own.items() if name.startswith(k + " ")), mi)
        rows.append((name, wall, cs, wall / base, float(est), truth))
        print(f"  {name}: {wall:.2f} s", flush=True)
    print("\n| estimator | seconds | CPU s | × KSG1 | estimate (nats) | its truth (nats) |")
    print("|---|---|---|---|---|---|")
    for name, wall, cs, ratio, est, truth in rows:
        print(f"| {name} | {wall:.2f} | {cs:.2f} | {ratio:.2f} | {est:.3f} | {truth:.3f} |")


def against_latentmi(args):
    sys.path.insert(0, args.latentmi)
    if not hasattr(np, "NaN"):
        np.NaN = np.nan  # latentmi 0.1.3 uses the alias numpy 2 removed
    from latentmi import lmi

    from mipipe.estimators import latent_mi
    from mipipe.estimators.gaussian import gaussian_mi_from_cov

    rng = np.random.default_rng(1)
    n, d = args.lmi_n, 40
    z = rng.standard_normal((n, 2))
    w = 0.9 * z + math.sqrt(0.19) * rng.standard_normal((n, 2))
    a, b = rng.standard_normal((2, d)), rng.standard_normal((2, d))
    x = z @ a + rng.standard_normal((n, d))
    y = w @ b + rng.standard_normal((n, d))
    cov = np.block([[a.T @ a + np.eye(d), 0.9 * a.T @ b], [0.9 * b.T @ a, b.T @ b + np.eye(d)]])
    print(f"\nlatentmi comparison: 2 signal dims in {d} + {d}, n = {n}, true I(X; Y) = "
          f"{gaussian_mi_from_cov(cov, d):.3f} nats; settings: latent 8, paper widths, "
          f"lr 1e-4, <= {args.lmi_epochs} epochs, patience 30, batch 512, split 0.5")
    np.random.seed(0)
    import torch

    torch.manual_seed(0)
    t0 = time.perf_counter()
    pmis, _, _ = lmi.estimate(x, y, epochs=args.lmi_epochs, quiet=True, device="cpu")
    theirs = float(np.nanmean(pmis)) * math.log(2)
    t1 = time.perf_counter()
    ours = latent_mi(x, y, epochs=args.lmi_epochs, device="cpu", seed=0).estimate
    t2 = time.perf_counter()
    print(f"| implementation | estimate (nats) | seconds |\n|---|---|---|\n"
          f"| latentmi 0.1.3 | {theirs:.3f} | {t1 - t0:.1f} |\n"
          f"| mipipe latent_mi | {ours:.3f} | {t2 - t1:.1f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--d", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--slices", type=int, default=128)
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--only", choices=["speed", "latentmi"])
    ap.add_argument("--latentmi", metavar="DIR", help="directory holding the latentmi package")
    ap.add_argument("--lmi-n", type=int, default=4000)
    ap.add_argument("--lmi-epochs", type=int, default=300)
    args = ap.parse_args()
    if args.only != "latentmi":
        speed(args)
    if args.latentmi and args.only != "speed":
        against_latentmi(args)


if __name__ == "__main__":
    main()
