"""InfoNCE training step: fused numba critic vs the broadcasting and the tiled (thesis) forms.

For a batch of b rows, d = dx + dy inputs and critic width h, one training step of
:func:`mipipe.estimators.infonce_mi` is: the (b, b) critic matrix and the InfoNCE bound
(forward), ``loss.backward()`` and one Adam step. The script times that step and measures
its peak memory for each form:

* ``fused``     -- numba forward/backward kernels, never forms the b x b x h hidden layer
                   (what ``form="auto"`` uses on the CPU);
* ``broadcast`` -- (1, b, h) + (b, 1, h) broadcasting in torch, all rows at once
                   (the b x b x h hidden layer is materialised, forward and backward);
* ``tiled``     -- the thesis's/CLUB's (b, b, dx + dy) tile of [x_j; y_i] through the MLP.

All three run from this one invocation, each in a fresh subprocess of the same script
(so that one form's peak memory does not hide another's): imports, data, critic and a
warm-up step on a small batch (numba cache load, thread pool start) and full-size steps for
``WARM_S`` = 2 s (at least one) first, then the peak-RSS
counter is reset (``/proc/self/clear_refs`` = 5; ru_maxrss if that is not allowed) and
``--repeats`` steps at batch size b are timed. Reported: the median step time, the
subprocess's peak RSS (VmHWM: Python, torch and numba allocations included) and its increase
over the RSS just before the timed steps ("step memory"), which is what the form itself
needs. The targets (issue 3): fused >= 10x faster than tiled and <= 1/10 of its memory.

    .venv/bin/python benchmarks/neural.py            # b = 3334, d = 10 + 10, h = 30
    .venv/bin/python benchmarks/neural.py --quick    # b = 1000, smoke run (~1 min)
    .venv/bin/python benchmarks/neural.py --b 10000 --forms fused broadcast
    .venv/bin/python benchmarks/neural.py --api --pair   # + public API and MINE/NWJ/SMILE
    .venv/bin/python benchmarks/neural.py --forms fused --profile   # where a step's time goes

Also (issue 15), in the same run:

* the fraction of the floor: an InfoNCE step does about ``FLOPS_PER_PAIR_UNIT`` = 10
  floating-point operations per (i, j, k) term (forward: add, max, multiply, add; backward:
  add, compare/select, three accumulating adds, one multiply), 10 b^2 h in all; the floor is
  that count over the CPU's float32 vector throughput on one core (``--gflops``, default 8
  lanes (AVX2) x 4 FP pipes x the clock in /proc/cpuinfo), and the fraction reached is floor /
  measured step time;
* ``--api``: seconds per step through the public API, ``infonce_mi(..., form="tiled")``
  against the default form, each with ``epochs`` steps at one batch of b rows, one thread;
* ``--pair``: seconds per epoch of MINE, NWJ and SMILE (n = 3 b rows, 3 batches of b) with
  the numba step (the default on the CPU) against the autograd + torch.optim.Adam step
  (``engine="torch"``, what every step was before issue 15), one thread.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from estimators import _reset_peak_rss, _status_kb

FORMS = ("fused", "broadcast", "tiled")
WARM_S = 2.0  # seconds of full-size warm-up steps before a form is timed


def worker(
    form: str, b: int, dx: int, dy: int, h: int, repeats: int, seed: int, device: str = "cpu"
) -> dict:
    """One form in this (fresh) process: warm up, then time ``repeats`` steps."""
    import numpy as np
    import torch

    from mipipe.estimators import _critic, neural
    from mipipe.estimators.bounds import infonce_bound, infonce_from_rows

    rng = np.random.default_rng(seed)
    x_all = rng.standard_normal((b, dx)).astype(np.float32)
    y_all = rng.standard_normal((b, dy)).astype(np.float32)
    m = min(dx, dy)
    y_all[:, :m] += 0.5 * x_all[:, :m]  # some dependence; the cost does not depend on it
    dev = torch.device(device)
    x_all, y_all = torch.from_numpy(x_all).to(dev), torch.from_numpy(y_all).to(dev)
    net = neural._make_critic(dx + dy, h, True, seed, torch.float32, dev)
    cuda = dev.type == "cuda"
    opt = torch.optim.Adam(net.parameters(), lr=0.005)

    def bound(x, y):
        if form == "fused":
            return infonce_from_rows(_critic.fused_infonce_rows(net, x, y))
        if form == "broadcast":
            return infonce_bound(net[3](_critic.broadcast_logits(net, x, y, chunk=None)))
        if form == "auto":  # what infonce_mi runs on this device
            return infonce_bound(neural._infonce_scores(net, x, y, "broadcast"))
        return infonce_bound(net[3](_critic.tiled_logits(net, x, y)))

    def step(x, y):
        loss = -bound(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss)  # (synchronises with the GPU)

    step(x_all[:200], y_all[:200])  # warm-up: numba cache, thread pool, allocator
    # and at full size for at least WARM_S seconds: small batches run the kernels on one
    # thread, and on the 2-core VM the first second or so of two-thread full-size steps ran
    # at about 80 ms, 4x the steady 18-19 ms (the one-thread step does not change)
    t_warm = time.perf_counter()
    while True:
        step(x_all, y_all)
        if time.perf_counter() - t_warm >= WARM_S:
            break
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(dev)
        gpu_before = torch.cuda.memory_allocated(dev)
    rss_before = _status_kb("VmRSS")
    reset_ok = _reset_peak_rss()
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        step(x_all, y_all)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    peak_kb = (
        _status_kb("VmHWM") if reset_ok else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    )
    extra = {}
    if cuda:
        extra = {
            "gpu_peak_mb": torch.cuda.max_memory_allocated(dev) / 2**20,
            "gpu_step_mb": (torch.cuda.max_memory_allocated(dev) - gpu_before) / 2**20,
            "gpu": torch.cuda.get_device_name(dev),
        }
    return {
        **extra,
        "form": form,
        "median_s": statistics.median(times),
        "best_s": min(times),
        "cpu_s": statistics.median(cpu),
        "peak_mb": peak_kb / 1024,
        "step_mb": (peak_kb - rss_before) / 1024,
        "rss_before_mb": rss_before / 1024,
        "peak_method": (
            "VmHWM after clear_refs" if reset_ok else f"ru_maxrss (before: {maxrss_before} kB)"
        ),
        "threads": torch.get_num_threads(),
    }


FLOPS_PER_PAIR_UNIT = 10
KERNEL_OPS_PER_TERM = 6


def cpu_ghz() -> float:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("cpu MHz"):
                    return float(line.split(":")[1]) / 1000
    except OSError:
        pass
    return 3.0


def api_worker(b: int, dx: int, dy: int, h: int, repeats: int, seed: int) -> dict:
    """Seconds per step of infonce_mi through the public API: default form vs tiled."""
    import numpy as np

    from mipipe.estimators import infonce_mi

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, dx)).astype(np.float32)
    y = rng.standard_normal((b, dy)).astype(np.float32)
    y[:, : min(dx, dy)] += 0.5 * x[:, : min(dx, dy)]
    # warm-up at full size: numba cache load, and the first b x b buffers (a 200-row warm-up
    # left their cost in the first timed step: 0.107 s/step over 3 steps, 0.057 over 10)
    infonce_mi(x, y, hidden=h, epochs=1, batch_size=b, threads=1)
    out = {}
    for form, steps in (("auto", max(repeats, 3)), ("tiled", max(repeats // 2, 1))):
        res = infonce_mi(x, y, hidden=h, epochs=steps, batch_size=b, form=form, threads=1)
        out[form] = res.seconds / steps
    return out


def profile_worker(b: int, dx: int, dy: int, h: int, repeats: int, seed: int) -> dict:
    """Where a fused InfoNCE step's time goes, one thread: best of ``repeats`` for each part.

    logits: the (b, b) critic matrix alone (_logits_kernel); forward: the InfoNCE forward
    kernel (logits, row maxima, exponentials, log-sum-exps); backward: the gradient kernel
    (upstream gradients from the stored softmax, the masked sums over the pairs);
    finish: block sums and the O(b h) weight gradients; step: the whole training step
    (first layer, both kernels, autograd, torch.optim.Adam)."""
    import numba
    import numpy as np
    import torch

    from mipipe.estimators import _critic, neural
    from mipipe.estimators.bounds import infonce_from_rows

    torch.set_num_threads(1)
    numba.set_num_threads(1)
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.standard_normal((b, dx)).astype(np.float32))
    y = torch.from_numpy(rng.standard_normal((b, dy)).astype(np.float32))
    net = neural._make_critic(dx + dy, h, True, seed, torch.float32, torch.device("cpu"))
    opt = torch.optim.Adam(net.parameters(), lr=0.005)

    def step():
        opt.zero_grad(set_to_none=True)
        (-infonce_from_rows(_critic.fused_infonce_rows(net, x, y))).backward()
        opt.step()

    a, c = _critic._split_first_layer(net[0], x, y)
    aT, nc, w2, base, a_np, c_np = _critic._prepare(
        a, c, net[2].weight.reshape(-1), net[2].bias.reshape(1)
    )
    terms = np.empty((b, b), np.float32)
    scale, psum = np.empty(b), np.empty(b)
    zdiag, lse, rows = (np.empty(b, np.float32) for _ in range(3))
    g = np.full(b, -1.0 / b, np.float32)
    sig = np.full(b, 0.5, np.float32)
    n_blocks, dAT, dC = _critic._buffers(aT, nc)

    def best(fn):
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    def backward():
        dAT[...] = 0
        _critic._infonce_grad_kernel(aT, nc, terms, scale, sig, g, n_blocks, dAT, dC)

    return {
        "logits": best(lambda: _critic._logits_kernel(aT, nc, w2, base, terms)),
        "forward": best(
            lambda: _critic._infonce_rows_kernel(aT, nc, w2, base, terms, scale, zdiag, lse, psum, rows)
        ),
        "backward": best(backward),
        "finish": best(lambda: _critic._finish(dAT, dC, w2, a_np, c_np, h)),
        "step": best(step),
    }


def pair_worker(b: int, dx: int, dy: int, h: int, epochs: int, seed: int) -> dict:
    """Seconds per epoch (3 batches of b rows) of MINE/NWJ/SMILE, numba vs torch engine."""
    import inspect

    import numpy as np

    from mipipe.estimators import mine_mi, neural, nwj_mi, smile_mi

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3 * b, dx)).astype(np.float32)
    y = rng.standard_normal((3 * b, dy)).astype(np.float32)
    y[:, : min(dx, dy)] += 0.5 * x[:, : min(dx, dy)]
    out = {}
    for kind, func in (("mine", mine_mi), ("nwj", nwj_mi), ("smile", smile_mi)):
        kw = {
            k: p.default
            for k, p in inspect.signature(func).parameters.items()
            if p.default is not inspect.Parameter.empty
        }
        kw.update(hidden=h, batch_size=b, epochs=epochs, device="cpu", form="auto")
        kw["ema"] = kw.get("ema")
        kw.pop("threads")
        neural._train(kind, x[:200], y[:200], engine="numba", threads=1,
                      **{**kw, "epochs": 1, "batch_size": 100})
        times = {}
        for engine in ("torch", "numba", "torch", "numba"):  # interleaved, best of two
            res = neural._train(kind, x, y, engine=engine, threads=1, **kw)
            times[engine] = min(times.get(engine, math.inf), res.seconds / epochs)
        out[kind] = times
    return out


def run_form(form: str, args) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        form,
        "--b",
        str(args.b),
        "--dx",
        str(args.dx),
        "--dy",
        str(args.dy),
        "--h",
        str(args.h),
        "--repeats",
        str(args.repeats),
        "--seed",
        str(args.seed),
        "--device",
        args.device,
        "--epochs",
        str(args.epochs),
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=args.timeout)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {
            "form": form,
            "error": f"exit {proc.returncode}: " + " | ".join(tail),
            "wall_s": time.perf_counter() - t0,
        }
    return json.loads(proc.stdout.strip().splitlines()[-1])


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="b = 1000, 2 repeats (smoke run)")
    ap.add_argument("--b", type=int, default=3334, help="batch size (default 3334, the thesis's)")
    ap.add_argument("--dx", type=int, default=10)
    ap.add_argument("--dy", type=int, default=10)
    ap.add_argument("--h", type=int, default=30, help="critic width (default 30)")
    ap.add_argument("--repeats", type=int, default=None, help="timed steps per form (default 5)")
    ap.add_argument(
        "--forms",
        nargs="+",
        choices=FORMS + ("auto",),
        default=None,
        help="default: fused broadcast tiled (CPU), auto broadcast tiled (CUDA)",
    )
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda; fused is CPU-only")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per form")
    ap.add_argument("--worker", choices=FORMS + ("auto", "api", "pair", "profile"),
                    help=argparse.SUPPRESS)
    ap.add_argument("--profile", action="store_true",
                    help="also time the parts of a fused InfoNCE step (one thread)")
    ap.add_argument("--api", action="store_true", help="also time infonce_mi tiled vs default")
    ap.add_argument("--pair", action="store_true", help="also time MINE/NWJ/SMILE per epoch")
    ap.add_argument("--epochs", type=int, default=5, help="epochs per --pair run (default 5)")
    ap.add_argument(
        "--gflops", type=float, default=None,
        help="float32 vector throughput of one core in GFLOP/s (default 8 x 4 x clock GHz)",
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.b = min(args.b, 1000)
        args.repeats = args.repeats or 2
    args.repeats = args.repeats or 5
    if args.forms is None:
        args.forms = list(FORMS) if args.device == "cpu" else ["auto", "broadcast", "tiled"]
    if args.worker == "api":
        print(json.dumps(api_worker(args.b, args.dx, args.dy, args.h, args.repeats, args.seed)))
        return 0
    if args.worker == "profile":
        print(json.dumps(profile_worker(args.b, args.dx, args.dy, args.h, args.repeats, args.seed)))
        return 0
    if args.worker == "pair":
        print(json.dumps(pair_worker(args.b, args.dx, args.dy, args.h, args.epochs, args.seed)))
        return 0
    if args.worker:
        print(
            json.dumps(
                worker(
                    args.worker,
                    args.b,
                    args.dx,
                    args.dy,
                    args.h,
                    args.repeats,
                    args.seed,
                    args.device,
                )
            )
        )
        return 0

    print(
        f"InfoNCE training step on {args.device}, b = {args.b}, d = {args.dx} + {args.dy}, h = {args.h}, "
        f"{args.repeats} timed steps per form; load average {os.getloadavg()[0]:.2f}, "
        f"{os.cpu_count()} CPUs"
    )
    results = {}
    print(
        f"{'form':<10} {'median s/step':>13} {'best s':>8} {'cpu s':>7} {'peak RSS MB':>12} "
        f"{'step MB':>9}"
    )
    for form in args.forms:
        r = run_form(form, args)
        results[form] = r
        if "error" in r:
            print(f"{form:<10} failed: {r['error']}")
            continue
        print(
            f"{form:<10} {r['median_s']:>13.3f} {r['best_s']:>8.3f} {r['cpu_s']:>7.2f} "
            f"{r['peak_mb']:>12.0f} {r['step_mb']:>9.0f}",
            flush=True,
        )
        if "gpu" in r:
            print(
                f"{'':<10} {r['gpu']}: peak allocated {r['gpu_peak_mb']:.0f} MB, "
                f"{r['gpu_step_mb']:.0f} MB over the resident tensors",
                flush=True,
            )
    ok = [f for f in args.forms if "error" not in results[f]]
    if ok:
        r0 = results[ok[0]]
        print(
            f"memory: {r0['peak_method']}; step MB = peak RSS - RSS before the timed steps "
            f"({r0['rss_before_mb']:.0f} MB: Python, torch, numba, data); torch threads "
            f"{r0['threads']}; load average now {os.getloadavg()[0]:.2f}"
        )
    fused, tiled = results.get("fused"), results.get("tiled")
    for other in ("tiled", "broadcast"):
        ref = results.get(other)
        if fused and ref and "error" not in fused and "error" not in ref:
            speed = ref["median_s"] / fused["median_s"]
            mem_peak = fused["peak_mb"] / ref["peak_mb"]
            mem_step = fused["step_mb"] / max(ref["step_mb"], 1e-9)
            cpu_speed = ref["cpu_s"] / max(fused["cpu_s"], 1e-9)
            print(
                f"fused vs {other}: {speed:.1f}x faster (wall; {cpu_speed:.1f}x in CPU time); "
                f"memory {mem_peak:.3f} of its peak RSS, {mem_step:.3f} of its step memory"
            )
    if fused and tiled and "error" not in fused and "error" not in tiled:
        speed = tiled["median_s"] / fused["median_s"]
        print(f"target >= 10x faster than tiled: {verdict(speed >= 10)} ({speed:.1f}x)")
        print(
            f"target <= 1/10 of tiled memory (peak RSS): "
            f"{verdict(fused['peak_mb'] <= tiled['peak_mb'] / 10)} "
            f"({fused['peak_mb']:.0f} vs {tiled['peak_mb']:.0f} MB); step memory: "
            f"{verdict(fused['step_mb'] <= tiled['step_mb'] / 10)} "
            f"({fused['step_mb']:.0f} vs {tiled['step_mb']:.0f} MB)"
        )
    gflops = args.gflops or 8 * 4 * cpu_ghz()
    floor = FLOPS_PER_PAIR_UNIT * args.b**2 * args.h / (gflops * 1e9)
    print(
        f"floor: {FLOPS_PER_PAIR_UNIT} x b^2 h = "
        f"{FLOPS_PER_PAIR_UNIT * args.b**2 * args.h:.3g} flops per step at {gflops:.0f} GFLOP/s "
        f"= {floor * 1e3:.1f} ms"
    )
    for form in ok:
        print(
            f"  {form:<10} {results[form]['median_s'] * 1e3:9.1f} ms/step: "
            f"{floor / results[form]['median_s']:.3f} of the floor"
        )
    terms = args.b**2 * (-(-args.h // 16) * 16)  # h padded to whole SIMD vectors
    print(
        f"the fused kernels execute {KERNEL_OPS_PER_TERM} operations per (i, j, k) term (forward: "
        f"max, fused multiply-add; backward: compare, select, two adds) on h padded to "
        f"{-(-args.h // 16) * 16}: {KERNEL_OPS_PER_TERM * terms:.3g} per step"
    )
    if args.api:
        api = run_form("api", args)
        if "error" in api:
            print(f"public API: failed: {api['error']}")
        else:
            ratio = api["tiled"] / api["auto"]
            print(
                f"public API infonce_mi, one thread: default {api['auto']:.3f} s/step, tiled "
                f"{api['tiled']:.3f} s/step: {ratio:.1f}x; target >= 100x: {verdict(ratio >= 100)}"
                f"; default at {floor / api['auto']:.3f} of the floor"
            )
    if args.profile:
        prof = run_form("profile", args)
        if "error" in prof:
            print(f"profile: failed: {prof['error']}")
        else:
            step_s = prof["step"]
            parts = ", ".join(
                f"{name} {prof[name] * 1e3:.1f} ms" for name in ("logits", "forward", "backward", "finish")
            )
            rest = step_s - prof["forward"] - prof["backward"] - prof["finish"]
            print(
                f"profile of a fused step, one thread (best of {args.repeats}): step "
                f"{step_s * 1e3:.1f} ms = forward kernel {prof['forward'] * 1e3:.1f} + backward kernel "
                f"{prof['backward'] * 1e3:.1f} + finish {prof['finish'] * 1e3:.1f} + the rest "
                f"(first layer, autograd, Adam) {rest * 1e3:.1f}; [{parts}; the forward beyond "
                f"the logits: row maxima, exponentials, log-sum-exps]"
            )
    if args.pair:
        pair = run_form("pair", args)
        if "error" in pair:
            print(f"MINE/NWJ/SMILE: failed: {pair['error']}")
        else:
            for kind, t in pair.items():
                ratio = t["torch"] / t["numba"]
                print(
                    f"{kind:<6} s/epoch (3 batches of {args.b}, h = {args.h}, 1 thread): numba "
                    f"{t['numba'] * 1e3:.1f} ms, autograd + torch Adam {t['torch'] * 1e3:.1f} ms: "
                    f"{ratio:.1f}x fewer; target >= 3x: {verdict(ratio >= 3)}"
                )
    print(f"load average at the end {os.getloadavg()[0]:.2f} (a loaded machine inflates all times)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
