#!/usr/bin/env python
"""Speed and memory of mipipe's nearest-neighbour MI estimators against two baselines.

Times ``knn_mi`` (3KL, p = 2), ``ksg_mi`` variant 1 and variant 2 (p = inf) at
n in {10^3, 10^4, 10^5} and d in {1, 10} dimensions per variable, each with
method = "auto", "tree" and "brute", against two baselines written here:

* ``ckdtree`` -- the "textbook" cKDTree code most projects use (NPEET-style): a
  cKDTree on the joint [x, y] queried for k + 1 neighbours, then marginal counts with
  ``cKDTree.query_ball_point(..., return_length=True)`` on x and on y, ``workers=-1``.
  For knn_mi it is three cKDTree k-th neighbour queries (x, y, [x, y]).
* ``numpy`` -- the full n x n distance matrices (``scipy.spatial.distance.cdist``), then
  ``np.partition`` and row-wise counts. Run only where the matrices fit in memory.

Data: x ~ N(0, I_d), y = rho x + sqrt(1 - rho^2) e, e ~ N(0, I_d) independent, so the true
MI is -(d/2) log(1 - rho^2) (printed as a reference; k-NN estimators are biased in high d).

Method of measurement (honest about numba): every measurement runs in its own fresh Python
subprocess. The subprocess imports everything, builds the data, makes a warm-up call on the
first 300 rows (this triggers numba JIT compilation / cache loading and starts numba's
thread pool), then resets the kernel's peak-RSS counter (``/proc/self/clear_refs`` = 5) and
runs the timed repeats. Reported:

* seconds -- best of the repeats (``time.perf_counter``); at least 3 repeats unless one call
  takes longer than ``--slow`` seconds (then 1), more (up to ``--max-reps``) while under ``--budget`` s;
* cpu s -- CPU seconds of the process (all threads, user + sys, ``getrusage``) during the
  fastest repeat: less sensitive than wall time to other jobs on a shared machine, and with
  wall time it shows how well the call uses the cores (cpu / wall ~ number of threads);
* peak RSS -- VmHWM of the subprocess during the timed calls: the whole process (Python,
  numpy, scipy, numba, the data) -- this sees numba's and cKDTree's C allocations, which
  tracemalloc does not;
* dRSS -- that peak minus the RSS just before the timed calls: the working memory of the call;
* tracemalloc -- peak of Python/numpy allocations in one extra, untimed call (numba NRT and
  cKDTree internals are invisible to it), only where a call takes < ``--slow`` seconds.

A measurement that exceeds ``--timeout`` seconds is killed and reported as "> timeout"
(speed-ups against it are then lower bounds).

Threads: numba uses ``numba.config.NUMBA_NUM_THREADS`` (all cores by default) and cKDTree
``workers=-1``; cdist is single-threaded (as in the textbook code it stands for).

Usage::

    .venv/bin/python benchmarks/estimators.py            # full grid + auto-threshold audit
    .venv/bin/python benchmarks/estimators.py --quick    # smoke run (seconds)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

RHO = 0.8
EPS = 1e-10
ESTIMATORS = ("knn", "ksg1", "ksg2")
EST_LABEL = {"knn": "knn_mi(p=2)", "ksg1": "ksg_mi v1(p=inf)", "ksg2": "ksg_mi v2(p=inf)"}
WARMUP_ROWS = 300


# --------------------------------------------------------------------------- data


def make_data(n: int, d: int, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = RHO * x + math.sqrt(1.0 - RHO**2) * rng.standard_normal((n, d))
    return x, y


def true_mi(d: int) -> float:
    return -0.5 * d * math.log(1.0 - RHO**2)


# --------------------------------------------------------------------------- baselines


def _log_ball_l2(d: int) -> float:
    # log volume of the unit Euclidean ball in R^d (with the 2^d, see shared README)
    return d * math.log(2.0) + d * math.lgamma(1.5) - math.lgamma(1.0 + d / 2.0)


def textbook_knn(x, y, k):
    """3KL with three cKDTree searches (p = 2)."""
    import numpy as np
    from scipy.spatial import cKDTree
    from scipy.special import digamma

    n = x.shape[0]

    def h(a):
        r = cKDTree(a).query(a, k=k + 1, p=2, workers=-1)[0][:, k]
        d = a.shape[1]
        return _log_ball_l2(d) + d * np.mean(np.log(r)) - digamma(k) + digamma(n)

    return float(h(x) + h(y) - h(np.hstack([x, y])))


def textbook_ksg1(x, y, k):
    """KSG1 the way most code writes it (joint max-norm tree, then ball counts)."""
    import numpy as np
    from scipy.spatial import cKDTree
    from scipy.special import digamma

    n = x.shape[0]
    xy = np.hstack([x, y])
    dist, _ = cKDTree(xy).query(xy, k=k + 1, p=np.inf, workers=-1)
    r = np.nextafter(dist[:, k] * (1.0 - EPS), 0.0)  # strict ball via a closed one
    nx = cKDTree(x).query_ball_point(x, r, p=np.inf, return_length=True, workers=-1)
    ny = cKDTree(y).query_ball_point(y, r, p=np.inf, return_length=True, workers=-1)
    # the counts include the point itself: they are n_x + 1 and n_y + 1
    return float(digamma(k) + digamma(n) - np.mean(digamma(nx) + digamma(ny)))


def textbook_ksg2(x, y, k):
    import numpy as np
    from scipy.spatial import cKDTree
    from scipy.special import digamma

    n = x.shape[0]
    xy = np.hstack([x, y])
    _, idx = cKDTree(xy).query(xy, k=k + 1, p=np.inf, workers=-1)
    nb = idx[:, 1:]  # continuous data: column 0 is the point itself
    rx = np.abs(x[nb] - x[:, None, :]).max(axis=2).max(axis=1) * (1.0 + EPS)
    ry = np.abs(y[nb] - y[:, None, :]).max(axis=2).max(axis=1) * (1.0 + EPS)
    mx = cKDTree(x).query_ball_point(x, rx, p=np.inf, return_length=True, workers=-1) - 1
    my = cKDTree(y).query_ball_point(y, ry, p=np.inf, return_length=True, workers=-1) - 1
    return float(digamma(k) - 1.0 / k + digamma(n) - np.mean(digamma(mx) + digamma(my)))


def matrix_knn(x, y, k):
    """3KL from full n x n Euclidean distance matrices."""
    import numpy as np
    from scipy.spatial.distance import cdist
    from scipy.special import digamma

    n = x.shape[0]
    dx = cdist(x, x)
    dy = cdist(y, y)
    dxy = np.hypot(dx, dy)
    out = 0.0
    for dm, d, sign in (
        (dx, x.shape[1], 1),
        (dy, y.shape[1], 1),
        (dxy, x.shape[1] + y.shape[1], -1),
    ):
        np.fill_diagonal(dm, np.inf)
        dm.partition(k - 1, axis=1)  # in place
        r = dm[:, k - 1]
        out += sign * (_log_ball_l2(d) + d * np.mean(np.log(r)) - digamma(k) + digamma(n))
    return float(out)


def matrix_ksg1(x, y, k):
    import numpy as np
    from scipy.spatial.distance import cdist
    from scipy.special import digamma

    n = x.shape[0]
    dx = cdist(x, x, "chebyshev")
    dy = cdist(y, y, "chebyshev")
    dj = np.maximum(dx, dy)
    np.fill_diagonal(dj, np.inf)
    dj.partition(k - 1, axis=1)
    r = (dj[:, k - 1] * (1.0 - EPS))[:, None]
    del dj
    nx = np.count_nonzero(dx < r, axis=1) - 1  # minus the point itself (distance 0 < r)
    ny = np.count_nonzero(dy < r, axis=1) - 1
    return float(digamma(k) + digamma(n) - np.mean(digamma(nx + 1.0) + digamma(ny + 1.0)))


def matrix_ksg2(x, y, k):
    import numpy as np
    from scipy.spatial.distance import cdist
    from scipy.special import digamma

    n = x.shape[0]
    dx = cdist(x, x, "chebyshev")
    dy = cdist(y, y, "chebyshev")
    dj = np.maximum(dx, dy)
    np.fill_diagonal(dj, np.inf)
    nb = np.argpartition(dj, k - 1, axis=1)[:, :k]
    del dj
    rows = np.arange(n)[:, None]
    rx = (dx[rows, nb].max(axis=1) * (1.0 + EPS))[:, None]
    ry = (dy[rows, nb].max(axis=1) * (1.0 + EPS))[:, None]
    mx = np.count_nonzero(dx <= rx, axis=1) - 1
    my = np.count_nonzero(dy <= ry, axis=1) - 1
    return float(digamma(k) - 1.0 / k + digamma(n) - np.mean(digamma(mx) + digamma(my)))


# n x n float64 matrices alive at once (plus temporaries) in the matrix baselines
MATRIX_COPIES = 4


def matrix_bytes(n: int) -> int:
    return MATRIX_COPIES * n * n * 8


def mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


# --------------------------------------------------------------------------- the callable


def make_callable(impl: str, est: str, method: str, k: int):
    if impl == "mipipe":
        from mipipe.estimators import knn_mi, ksg_mi

        if est == "knn":
            return lambda x, y: knn_mi(x, y, k=k, p=2, eps=EPS, method=method, workers=-1)
        variant = 1 if est == "ksg1" else 2
        return lambda x, y: ksg_mi(
            x, y, k=k, p=math.inf, variant=variant, eps=EPS, method=method, workers=-1
        )
    table = {
        ("ckdtree", "knn"): textbook_knn,
        ("ckdtree", "ksg1"): textbook_ksg1,
        ("ckdtree", "ksg2"): textbook_ksg2,
        ("numpy", "knn"): matrix_knn,
        ("numpy", "ksg1"): matrix_ksg1,
        ("numpy", "ksg2"): matrix_ksg2,
    }
    f = table[(impl, est)]
    return lambda x, y: f(x, y, k)


def auto_resolves_to(est: str, n: int, dx: int, dy: int) -> str:
    """What method="auto" picks, asked from the library itself."""
    from mipipe.estimators.knn import _method_for
    from mipipe.estimators.neighbours import tree_supports_ksg

    p = 2.0 if est == "knn" else math.inf
    m = _method_for("knn" if est == "knn" else "ksg", n, dx + dy, p, "auto")
    if est != "knn" and m == "tree" and not tree_supports_ksg(dx, dy, p):
        m = "brute"
    return m


def library_fingerprint() -> str:
    """git commit of the checkout and a hash of the estimator sources (the library may be
    edited while a long run is going on; the run checks this again at the end)."""
    import hashlib

    import mipipe.estimators as pkg

    folder = os.path.dirname(pkg.__file__)
    h = hashlib.sha256()
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py"):
            with open(os.path.join(folder, name), "rb") as f:
                h.update(name.encode() + f.read())
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            check=False,
            cwd=folder,
            capture_output=True,
            text=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "."],
            check=False,
            cwd=folder,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        commit, dirty = "?", ""
    return f"commit {commit or '?'}{' + uncommitted edits' if dirty else ''}, estimators sha256 {h.hexdigest()[:12]}"


# --------------------------------------------------------------------------- worker


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def worker(spec: dict) -> dict:
    import resource
    import tracemalloc

    import numba

    x, y = make_data(spec["n"], spec["d"], spec["seed"])
    fn = make_callable(spec["impl"], spec["est"], spec["method"], spec["k"])
    w = min(WARMUP_ROWS, spec["n"])
    fn(x[:w], y[:w])  # JIT compile / load cache, start numba's thread pool

    rss_before = _status_kb("VmRSS")
    reset_ok = _reset_peak_rss()
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    cpus = []
    value = None
    while True:
        c0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        value = fn(x, y)
        times.append(time.perf_counter() - t0)
        c1 = resource.getrusage(resource.RUSAGE_SELF)
        cpus.append((c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime))
        if times[0] > spec["slow"]:
            break
        if len(times) >= spec["max_reps"] or (len(times) >= 3 and sum(times) >= spec["budget"]):
            break
    peak_kb = _status_kb("VmHWM")
    maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if not reset_ok:  # fall back on getrusage (only sees growth above the earlier peak)
        peak_kb = maxrss_after

    tm_peak = None
    if min(times) < spec["slow"]:
        tracemalloc.start()
        fn(x, y)
        tm_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()

    return {
        **spec,
        "value": value,
        "times": times,
        "best": min(times),
        "cpu_of_best": cpus[times.index(min(times))],
        "cpu_min": min(cpus),
        "peak_rss_mb": peak_kb / 1024.0,
        "drss_mb": (peak_kb - rss_before) / 1024.0,
        "maxrss_delta_mb": (maxrss_after - maxrss_before) / 1024.0,
        "tracemalloc_mb": None if tm_peak is None else tm_peak / 2**20,
        "peak_method": "VmHWM (clear_refs)" if reset_ok else "ru_maxrss",
        "numba_threads": numba.get_num_threads(),
    }


def paired_worker(spec: dict) -> dict:
    """Time two implementations on the same data in one process, calls interleaved
    (A, B, A, B, ...), so that load from other jobs hits both alike; best of each."""
    x, y = make_data(spec["n"], spec["d"], spec["seed"])
    fns = [make_callable(impl, spec["est"], method, spec["k"]) for impl, method in spec["pair"]]
    w = min(WARMUP_ROWS, spec["n"])
    for f in fns:
        f(x[:w], y[:w])
        f(x, y)
    times = [[], []]
    t_end = time.perf_counter() + spec["budget"]
    while len(times[0]) < 5 or (time.perf_counter() < t_end and len(times[0]) < spec["max_reps"]):
        for f, ts in zip(fns, times):
            t0 = time.perf_counter()
            f(x, y)
            ts.append(time.perf_counter() - t0)
    return {**spec, "best": [min(t) for t in times], "reps": len(times[0])}


def _spec_key(spec: dict) -> str:
    keys = ("impl", "est", "method", "n", "d", "k", "seed", "pair")
    return json.dumps({k: spec.get(k) for k in keys}, sort_keys=True)


def run_measurement(spec: dict, timeout: float) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**spec, "timeout": timeout, "wall": time.perf_counter() - t0}
    if proc.returncode != 0:
        return {**spec, "error": (proc.stderr or proc.stdout).strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- driver


def fmt_t(r) -> str:
    if r is None:
        return "-"
    if "timeout" in r:
        return f">{r['timeout']:.0f}"
    if "error" in r:
        return "ERROR"
    b = r["best"]
    return f"{b:.4f}" if b < 10 else f"{b:.2f}"


def fmt_cpu(r) -> str:
    """Process CPU seconds (all threads, user + sys, getrusage) of the fastest repeat."""
    if r is None or "cpu_of_best" not in r:
        return "-"
    c = r["cpu_of_best"]
    return f"{c:.4f}" if c < 10 else f"{c:.1f}"


def ratio(base, mine) -> str:
    """Speed-up base_seconds / mine_seconds ('>' when the baseline timed out)."""
    if base is None or mine is None or "best" not in mine:
        return "-"
    if "timeout" in base:
        return f">{base['timeout'] / mine['best']:.1f}x"
    if "best" not in base:
        return "-"
    return f"{base['best'] / mine['best']:.2f}x"


def mb(v) -> str:
    return "-" if v is None else f"{v:.0f}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small smoke run (n <= 2000, d in {1, 3})")
    ap.add_argument("--n", type=int, nargs="+", help="sample sizes (default 1e3 1e4 1e5)")
    ap.add_argument("--d", type=int, nargs="+", help="dimensions per variable (default 1 10)")
    ap.add_argument("--estimators", nargs="+", choices=ESTIMATORS, default=list(ESTIMATORS))
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--timeout", type=float, default=150.0, help="kill one measurement after this many s"
    )
    ap.add_argument("--slow", type=float, default=5.0, help="a call slower than this is run once")
    ap.add_argument(
        "--budget",
        type=float,
        default=3.0,
        help="repeat (3..max-reps times) while under this many s",
    )
    ap.add_argument("--max-reps", type=int, default=200, help="at most this many repeats")
    ap.add_argument(
        "--no-audit", action="store_true", help="skip the tree-vs-brute dimension sweep"
    )
    ap.add_argument(
        "--audit-d",
        type=int,
        nargs="+",
        default=[2, 3, 4, 6],
        help="extra dimensions per variable for the auto-threshold audit",
    )
    ap.add_argument("--json", help="write all raw measurements to this file (after each one)")
    ap.add_argument(
        "--reuse",
        help="take measurements from this --json file of an earlier (e.g. "
        "killed) run instead of repeating them, where the estimator sources are the same",
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        spec = json.loads(args.worker)
        print(json.dumps(paired_worker(spec) if "pair" in spec else worker(spec)))
        return 0

    if args.quick:
        ns = args.n or [500, 2000]
        ds = args.d or [1, 3]
        audit_d = [] if args.no_audit else [2]
        args.budget = min(args.budget, 0.5)
    else:
        ns = args.n or [1000, 10000, 100000]
        ds = args.d or [1, 10]
        audit_d = [] if args.no_audit else args.audit_d

    import numba
    import numpy as np
    import scipy

    from mipipe.estimators.neighbours import TREE_MAX_JOINT_DIM

    print("# mipipe estimator benchmark")
    print(
        f"# python {sys.version.split()[0]}  numpy {np.__version__}  scipy {scipy.__version__}  "
        f"numba {numba.__version__}"
    )
    print(
        f"# cores: os.cpu_count()={os.cpu_count()}  affinity={len(os.sched_getaffinity(0))}  "
        f"numba threads={numba.config.NUMBA_NUM_THREADS}  cKDTree workers=-1"
    )
    print(
        f"# k={args.k}  rho={RHO}  eps={EPS}  seed={args.seed}  TREE_MAX_JOINT_DIM={TREE_MAX_JOINT_DIM}"
    )
    print(
        f"# timing: best of repeats (>=3 unless a call > {args.slow}s; up to {args.max_reps} while total < "
        f"{args.budget}s) after a warm-up call on {WARMUP_ROWS} rows (JIT); one fresh subprocess per row"
    )
    print(
        "# memory: peakRSS = VmHWM of that subprocess during the timed calls (reset via "
        "/proc/self/clear_refs; includes interpreter+libs+data); dRSS = peakRSS - RSS before the calls;"
    )
    print(
        "#         tracemalloc = Python/numpy peak in one untimed extra call (blind to numba/cKDTree C memory)"
    )
    fingerprint = library_fingerprint()
    print(f"# mipipe: {fingerprint}")
    print(
        f"# load average at start: {os.getloadavg()}  (other processes on the machine distort timings)"
    )
    print(
        f"# per-measurement timeout {args.timeout:.0f}s; numpy n x n baseline only where "
        f"{MATRIX_COPIES} n x n float64 matrices fit in half of MemAvailable "
        f"({mem_available() / 2**30:.1f} GiB now)"
    )
    print(flush=True)

    results = []
    t_start = time.perf_counter()

    sha = fingerprint.split("sha256 ")[-1]
    reuse = {}
    if args.reuse:
        with open(args.reuse) as f:
            for r in json.load(f):
                if r.get("sha") == sha and "error" not in r:
                    reuse[_spec_key(r)] = r
        print(
            f"# reusing up to {len(reuse)} measurements of the same estimator sources from {args.reuse}"
        )

    def get(spec):
        key = _spec_key(spec)
        old = reuse.get(key)
        if old is not None and ("timeout" not in old or old["timeout"] >= args.timeout):
            r, tag = old, " (reused)"
        else:
            r, tag = run_measurement(spec, args.timeout), ""
            r["sha"] = sha
        results.append(r)
        if args.json:  # written after every measurement, so a killed run can be resumed
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1)
        return r, tag

    def measure(impl, est, method, n, d):
        spec = {
            "impl": impl,
            "est": est,
            "method": method,
            "n": n,
            "d": d,
            "k": args.k,
            "seed": args.seed,
            "slow": args.slow,
            "budget": args.budget,
            "max_reps": args.max_reps,
        }
        r, tag = get(spec)
        extra = tag
        if "error" in r:
            extra += f"  ERROR {r['error']}"
        print(
            f"  .. {EST_LABEL[est]:17s} n={n:<6d} d={d:<2d} {impl:7s} {method:5s} "
            f"{fmt_t(r):>9s} s{extra}   [{time.perf_counter() - t_start:.0f}s elapsed, "
            f"load {os.getloadavg()[0]:.2f}]",
            flush=True,
        )
        return r

    grid = {}
    for n in ns:
        for d in ds:
            fits = matrix_bytes(n) <= 0.5 * mem_available()
            for est in ESTIMATORS:
                if est not in args.estimators:
                    continue
                cell = {}
                for m in ("auto", "tree", "brute"):
                    cell[m] = measure("mipipe", est, m, n, d)
                cell["ckdtree"] = measure("ckdtree", est, "-", n, d)
                if fits:
                    cell["numpy"] = measure("numpy", est, "-", n, d)
                else:
                    cell["numpy"] = None
                    print(
                        f"  .. numpy n x n skipped at n={n}: needs ~{matrix_bytes(n) / 2**30:.0f} GiB "
                        f"({n}x{n} float64 = {n * n * 8 / 2**30:.1f} GiB each)",
                        flush=True,
                    )
                cell["auto_is"] = auto_resolves_to(est, n, d, d)
                grid[(est, n, d)] = cell

    audit = {}
    for d in audit_d:
        for n in ns:
            for est in ("knn", "ksg1"):
                if est not in args.estimators:
                    continue
                audit[(est, n, d)] = {m: measure("mipipe", est, m, n, d) for m in ("tree", "brute")}
                audit[(est, n, d)]["auto_is"] = auto_resolves_to(est, n, d, d)

    paired = {}
    if 1 in ds:
        print(
            "  .. d=1+1 targets: mipipe auto vs textbook cKDTree, interleaved in one process",
            flush=True,
        )
        for est in args.estimators:
            for n in ns:
                spec = {
                    "pair": [["mipipe", "auto"], ["ckdtree", "-"]],
                    "est": est,
                    "n": n,
                    "d": 1,
                    "k": args.k,
                    "seed": args.seed,
                    "budget": max(args.budget, 2.0),
                    "max_reps": args.max_reps,
                }
                r, _ = get(spec)
                paired[(est, n)] = r

    # ------------------------------------------------------------------ report
    print()
    print("=" * 130)
    print(
        "RESULTS  (seconds = best of repeats; speed-up = baseline_seconds / this_seconds; "
        "memory in MiB)"
    )
    print("=" * 130)
    hdr = (
        f"{'estimator':17s} {'n':>7s} {'d':>5s} {'impl':16s} {'seconds':>9s} {'reps':>4s} "
        f"{'cpu s':>8s} {'MI (nats)':>10s} {'peakRSS':>8s} {'dRSS':>7s} {'tracem':>7s} "
        f"{'vs cKDTree':>10s} {'vs numpy':>9s}"
    )
    print(hdr)
    print("-" * len(hdr))
    for (est, n, d), cell in grid.items():
        for key in ("auto", "tree", "brute", "ckdtree", "numpy"):
            r = cell[key]
            if key in ("auto", "tree", "brute"):
                name = f"mipipe {key}" + (f"->{cell['auto_is']}" if key == "auto" else "")
            else:
                name = "textbook cKDTree" if key == "ckdtree" else "numpy n x n"
            if r is None:
                print(
                    f"{EST_LABEL[est]:17s} {n:>7d} {d:>2d}+{d:<2d} {name:16s} {'skipped':>9s}  "
                    f"(n x n float64 = {n * n * 8 / 2**30:.0f} GiB per matrix)"
                )
                continue
            ok = "best" in r
            print(
                f"{EST_LABEL[est]:17s} {n:>7d} {d:>2d}+{d:<2d} {name:16s} {fmt_t(r):>9s} "
                f"{len(r['times']) if ok else 0:>4d} "
                f"{fmt_cpu(r):>8s} "
                f"{r['value'] if ok else float('nan'):>10.5f} "
                f"{mb(r.get('peak_rss_mb')):>8s} {mb(r.get('drss_mb')):>7s} "
                f"{mb(r.get('tracemalloc_mb')):>7s} "
                f"{ratio(cell['ckdtree'], r) if key != 'ckdtree' else '1x':>10s} "
                f"{ratio(cell['numpy'], r) if key != 'numpy' else '1x':>9s}"
            )
        print(f"{'':17s} {'':>7s} {'':>5s} (true MI of the Gaussian: {true_mi(d):.4f})")

    print()
    print(
        "AUTO AUDIT: mipipe method='tree' vs 'brute' vs 'auto' (seconds) -- "
        f"TREE_MAX_JOINT_DIM={TREE_MAX_JOINT_DIM}"
    )
    print(
        "  (auto is timed on the main grid only; on the extra audit rows 'auto picks' is what it would choose;"
        "\n   'auto loses' = chosen seconds / best seconds where auto picks the slower back end)"
    )
    print(
        f"{'estimator':17s} {'n':>7s} {'d':>5s} {'tree':>9s} {'brute':>9s} {'auto':>9s} "
        f"{'cpu tree':>9s} {'cpu brute':>9s} "
        f"{'auto picks':>10s} {'faster':>7s} {'auto loses':>10s}"
    )
    rows = [(k_, c) for k_, c in grid.items()] + [(k_, c) for k_, c in audit.items()]
    rows.sort(key=lambda kc: (ESTIMATORS.index(kc[0][0]), kc[0][1], kc[0][2]))
    for (est, n, d), cell in rows:
        tt, tb = cell["tree"], cell["brute"]
        ta = cell.get("auto")

        def sec(r):
            if r is None:
                return None
            if "best" in r:
                return r["best"]
            if "timeout" in r:
                return r["timeout"]
            return None

        st, sb = sec(tt), sec(tb)
        faster = "-"
        if st is not None and sb is not None:
            faster = "tree" if st < sb else "brute"
        loses = "-"
        if faster != "-":
            chosen = sec(tt) if cell["auto_is"] == "tree" else sec(tb)
            best = min(st, sb)
            loses = f"{chosen / best:.2f}x" if cell["auto_is"] != faster else "no"
        print(
            f"{EST_LABEL[est]:17s} {n:>7d} {d:>2d}+{d:<2d} {fmt_t(tt):>9s} {fmt_t(tb):>9s} "
            f"{fmt_t(ta) if ta else '-':>9s} {fmt_cpu(tt):>9s} {fmt_cpu(tb):>9s} "
            f"{cell['auto_is']:>10s} {faster:>7s} {loses:>10s}"
        )

    print()
    print("AGREEMENT (max |difference| of the estimate against mipipe method='brute', same data)")
    worst = {}
    for (est, n, d), cell in list(grid.items()) + list(audit.items()):
        ref = cell["brute"]
        if ref is None or "value" not in ref:
            continue
        for key in ("auto", "tree", "ckdtree", "numpy"):
            r = cell.get(key)
            if r is None or "value" not in r:
                continue
            diff = abs(r["value"] - ref["value"])
            worst[(est, key)] = max(worst.get((est, key), 0.0), diff)
    for est in ESTIMATORS:
        parts = [
            f"{key}: {worst[(est, key)]:.2e}"
            for key in ("auto", "tree", "ckdtree", "numpy")
            if (est, key) in worst
        ]
        if parts:
            print(f"  {EST_LABEL[est]:17s} " + "   ".join(parts))
    ksg1_diffs = [v for (e, _), v in worst.items() if e == "ksg1"]
    if ksg1_diffs:
        m = max(ksg1_diffs)
        print(
            f"  KSG1 max abs difference mipipe vs baselines: {m:.3e}  -> "
            f"{'PASS' if m <= 1e-9 else 'MISS'} (<= 1e-9)"
        )

    print()
    print("TARGETS")
    hi_d = 10 if 10 in ds else max(ds)
    c = grid.get(("ksg1", 10000, hi_d))
    if c and "best" in c["auto"]:
        t = c["auto"]["best"]
        print(
            f"  {'PASS' if t <= 0.3 else 'MISS'}  KSG1 n=10^4 d={hi_d}+{hi_d}: {t:.3f} s (target <= 0.3 s)"
        )
        b = c["ckdtree"]
        if "best" in b or "timeout" in b:
            sp = (b.get("best") or b["timeout"]) / t
            lb = ">=" if "timeout" in b else ""
            print(
                f"  {'PASS' if sp >= 8 else 'MISS'}  KSG1 n=10^4 d={hi_d}+{hi_d}: {lb}{sp:.1f}x faster "
                f"than textbook cKDTree (target >= 8x)"
            )
    else:
        print("  n/a   KSG1 n=10^4 d=10+10 not in this run")
    c = grid.get(("ksg1", 100000, hi_d))
    if c and "best" in c["auto"]:
        t = c["auto"]["best"]
        pk = c["auto"]["peak_rss_mb"]
        print(
            f"  {'PASS' if t <= 15 else 'MISS'}  KSG1 n=10^5 d={hi_d}+{hi_d}: {t:.2f} s (target <= 15 s)"
        )
        print(
            f"  {'PASS' if pk < 2048 else 'MISS'}  KSG1 n=10^5 d={hi_d}+{hi_d}: peak RSS {pk:.0f} MiB "
            f"(whole process; dRSS {c['auto']['drss_mb']:.0f} MiB) (target < 2 GiB)"
        )
    elif c:
        print(f"  MISS  KSG1 n=10^5 d={hi_d}+{hi_d}: {fmt_t(c['auto'])} s (did not finish)")
    else:
        print("  n/a   KSG1 n=10^5 d=10+10 not in this run")
    if paired:
        print(
            "  (d=1+1: interleaved in one process, best of each; the separate-process grid numbers "
            "in brackets)"
        )
    for (est, n), r in paired.items():
        if "best" not in r:
            print(f"  ERROR {EST_LABEL[est]} n={n} d=1+1: {r.get('error') or r.get('timeout')}")
            continue
        ta, tb = r["best"]
        c = grid.get((est, n, 1), {})
        ga, gb = c.get("auto", {}).get("best"), c.get("ckdtree", {}).get("best")
        grid_note = f" [grid: {ga * 1e3:.2f} vs {gb * 1e3:.2f} ms]" if ga and gb else ""
        print(
            f"  {'PASS' if ta <= tb else 'MISS'}  {EST_LABEL[est]} n={n} d=1+1: mipipe auto "
            f"{ta * 1e3:.2f} ms vs textbook cKDTree {tb * 1e3:.2f} ms ({tb / ta:.2f}x, "
            f"{r['reps']} pairs){grid_note}"
        )
    now = library_fingerprint()
    if now.split("sha256 ")[-1] != fingerprint.split("sha256 ")[-1]:
        print(
            f"\n# WARNING: the estimator sources changed during the run (now {now}); "
            "rows measured before and after the change are not comparable -- rerun"
        )
    print(
        f"\n# total wall time {time.perf_counter() - t_start:.0f} s; load average at end {os.getloadavg()}"
    )

    return 0


if __name__ == "__main__":
    sys.exit(main())
