"""Neural variational MI estimators: MINE (Donsker-Varadhan), NWJ, SMILE and InfoNCE.

The critic is the thesis's (section 4.2.2, copied there from the CLUB repository):
``Linear(dx + dy -> h) -> ReLU -> Linear(h -> 1)``, with a final ``Softplus`` for InfoNCE.
Training protocol (thesis section 4.2.2, the default here): Adam (beta1 0.9, beta2 0.999,
eps 1e-8) with learning rate ``lr``; the n rows are cut, in row order and unshuffled, into
fixed batches of ``batch_size`` rows; an epoch is one pass over the batches; on every batch
the bound is first evaluated (the per-batch estimate) and then one gradient step is taken
on it; the result is the mean of the last ``last`` (20) per-batch estimates. Units: nats.

Batches: ``range(0, n, batch_size)`` slices, as a plain ``x[i:i + batch_size]`` loop cuts
them: with the thesis's n = 10000 and batch_size = 3334 (= ceil(10000 / 3), chosen so three
batches cover the data) that is 3334, 3334 and 3332 rows; a batch larger than n is one batch
of all n rows. A trailing batch of a single row (no marginal / negative sample possible) is
merged into the previous batch.
"""

from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from . import _critic
from ._validation import as_samples
from .bounds import (
    _check_clip,
    dv_bound,
    infonce_bound,
    infonce_from_rows,
    log_mean_exp,
    nwj_bound,
    smile_bound,
)

__all__ = ["TRACE_COLUMNS", "NeuralResult", "TrainingDiverged", "infonce_mi", "mine_mi", "nwj_mi", "smile_mi"]

TRACE_COLUMNS = ("step", "epoch", "batch", "estimate_nats", "loss", "heldout_nats")
FORMS = ("auto", "fused", "broadcast", "tiled")
# Memory allowed for the (chunk, b, h) hidden layers of the broadcasting form on the CPU
# (on CUDA: half the free device memory); above it, row chunks are recomputed in the
# backward pass.
_CPU_CHUNK_BYTES = 256e6


# A training whose final estimate is this many nats below the bound of the zero critic (which
# every bound reaches with T = 0: 0 for DV, InfoNCE and SMILE, -1/e for NWJ) has diverged: a
# critic that merely learned nothing stays near the zero critic's value, and no lower bound
# ends tens of nats below it (the diverged runs of issue 12 ended at -4.7e29 and -6.3e37).
DIVERGED_MARGIN_NATS = 10.0
ZERO_CRITIC_NATS = {"mine": 0.0, "nwj": -math.exp(-1.0), "infonce": 0.0, "smile": 0.0}


class TrainingDiverged(RuntimeError):
    """A neural estimator's training diverged: its loss or bound became non-finite, or its
    final estimate ended far below the zero critic's bound. ``step`` is the (0-based) step
    at which it happened (for a final estimate far below: the first step of the final run
    of steps below the threshold)."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


def _check_step(kind, step, epoch, batch, est, loss, held=0.0) -> None:
    """TrainingDiverged if the step's bound, loss or held-out bound is not finite."""
    if not (math.isfinite(est) and math.isfinite(loss) and math.isfinite(held)):
        what = f"the bound became {est!r} and the loss {loss!r}"
        if not math.isfinite(held):
            what += f", the held-out bound {held!r}"
        raise TrainingDiverged(
            f"{kind} training diverged at step {step} (epoch {epoch}, batch {batch}): {what}; "
            f"lower lr or rescale the inputs",
            step,
        )


def _check_end(kind: str, estimates: np.ndarray, estimate: float) -> None:
    """TrainingDiverged if the final estimate is DIVERGED_MARGIN_NATS below the zero critic's."""
    floor = ZERO_CRITIC_NATS[kind] - DIVERGED_MARGIN_NATS
    if estimate >= floor:
        return
    above = np.flatnonzero(estimates >= floor)
    step = int(above[-1] + 1) if above.size else 0
    raise TrainingDiverged(
        f"{kind} training diverged at step {step}: from there on the per-step bound stayed below "
        f"{floor:.3g} nats ({DIVERGED_MARGIN_NATS:g} nats under the zero critic's "
        f"{ZERO_CRITIC_NATS[kind]:.3g}), ending at an estimate of {estimate:.4g} nats; lower lr "
        f"or rescale the inputs",
        step,
    )


@dataclass(frozen=True)
class NeuralResult:
    """Result of a neural MI estimator.

    Attributes
    ----------
    estimate : float, nats: mean of the last ``last`` per-batch estimates (training batches,
        or held-out batches when ``holdout > 0``).
    trace : pandas.DataFrame, one row per training step with columns ``step``, ``epoch``,
        ``batch`` (int64, 0-based), ``estimate_nats`` (the bound on that batch before the
        update), ``loss`` (the minimised objective) and ``heldout_nats`` (NaN unless
        ``holdout > 0``), all float64.
    device : str, the device used ("cpu" or "cuda:0").
    seconds : float, wall time of training.
    """

    estimate: float
    trace: pd.DataFrame
    device: str
    seconds: float

    def __float__(self) -> float:
        return float(self.estimate)


# ----------------------------------------------------------------------------- checks
def _as_array(a, name: str) -> np.ndarray:
    """(n, d) float64 numpy array from a numpy array or a torch tensor (ValueError if bad)."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu()
        if a.is_floating_point() and a.dtype not in (torch.float32, torch.float64):
            a = a.float()  # bfloat16 / float16 have no numpy equivalent or too little range
        a = a.numpy()
    return as_samples(a, name)


def _int(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _check(x, y, hidden, lr, epochs, batch_size, seed, holdout, last, device, dtype):
    x = _as_array(x, "x")
    y = _as_array(y, "y")
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"x and y must have the same number of samples (rows), got {x.shape[0]} and {y.shape[0]}"
        )
    if x.shape[0] < 2:
        raise ValueError(f"need at least 2 samples, got n = {x.shape[0]}")
    hidden = _int(hidden, "hidden", 1)
    epochs = _int(epochs, "epochs", 1)
    batch_size = _int(batch_size, "batch_size", 2)
    seed = _int(seed, "seed", 0)
    if seed >= 2**64:
        raise ValueError(f"seed must be < 2**64 (a torch generator seed), got {seed}")
    last = _int(last, "last", 1)
    if (
        isinstance(lr, bool)
        or not isinstance(lr, numbers.Real)
        or not (math.isfinite(lr) and lr > 0)
    ):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    if isinstance(holdout, bool) or not isinstance(holdout, numbers.Real) or not (0 <= holdout < 1):
        raise ValueError(f"holdout must be a fraction in [0, 1), got {holdout!r}")
    if dtype not in ("float32", "float64", torch.float32, torch.float64):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    dtype = {"float32": torch.float32, "float64": torch.float64}.get(dtype, dtype)
    if dtype == torch.float32:
        limit = float(np.finfo(np.float32).max)
        for a, name in ((x, "x"), (y, "y")):
            if np.abs(a).max() > limit:
                raise ValueError(
                    f"{name} has values beyond float32's range (max |{name}| = "
                    f"{np.abs(a).max():.3g}); rescale the data or pass dtype='float64'"
                )
    return (
        x,
        y,
        hidden,
        float(lr),
        epochs,
        batch_size,
        seed,
        float(holdout),
        last,
        _device(device),
        dtype,
    )


def _device(device) -> torch.device:
    if device == "auto" or device is None:
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:k]', got {device!r}") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available")
        dev = torch.device(
            "cuda", dev.index if dev.index is not None else torch.cuda.current_device()
        )
    elif dev.type != "cpu":
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:k]', got {device!r}")
    return dev


def _batches(n: int, batch_size: int) -> list[tuple[int, int]]:
    edges = list(range(0, n, batch_size)) + [n]
    spans = [(edges[k], edges[k + 1]) for k in range(len(edges) - 1)]
    if len(spans) > 1 and spans[-1][1] - spans[-1][0] < 2:
        spans[-2:] = [(spans[-2][0], n)]
    return spans


# ----------------------------------------------------------------------------- critics
def _make_critic(
    d_in: int, hidden: int, softplus: bool, seed: int, dtype, device
) -> torch.nn.Sequential:
    """The thesis/CLUB critic, initialised by torch's default (Kaiming-uniform) init from a
    private copy of the global generator seeded with ``seed`` (the global state is kept)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers = [torch.nn.Linear(d_in, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)]
        if softplus:
            layers.append(torch.nn.Softplus())
        net = torch.nn.Sequential(*layers)
    return net.to(device=device, dtype=dtype)


def _pair_values(net, x, y):
    return net(torch.cat([x, y], dim=1)).squeeze(-1)


def _infonce_scores(net, x, y, form: str) -> torch.Tensor:
    """scores[i, j] = F(x_j, y_i) for one batch, by the chosen form."""
    if form == "tiled":
        return net[3](_critic.tiled_logits(net, x, y))
    if form == "fused":
        logits = _critic.fused_logits(net, x, y)
    else:
        h = net[0].out_features
        if x.is_cuda:  # half the free GPU memory for the hidden layers
            budget = torch.cuda.mem_get_info(x.device)[0] / 2
        else:
            budget = _CPU_CHUNK_BYTES
        chunk = _critic.auto_chunk(x.shape[0], h, x.element_size(), budget)
        logits = _critic.broadcast_logits(net, x, y, chunk)
    return net[3](logits)


# ----------------------------------------------------------------------------- steps
_PAIR_KINDS = {"mine": _critic.KIND_DV, "nwj": _critic.KIND_NWJ, "smile": _critic.KIND_SMILE}
_NP = {torch.float32: np.float32, torch.float64: np.float64}
ENGINES = ("auto", "numba", "torch")


def _ema_update(log_ma, cur, ema):
    """log of MINE's moving average m <- (1 - ema) m + ema * mean e^T (m starts at the first
    batch's value), in log space."""
    if log_ma is None or ema >= 1:
        return cur
    return float(np.logaddexp(log_ma + math.log1p(-ema), cur + math.log(ema)))


def _torch_stepper(kind, net, gen, dev, lr, ema, clip, form):
    """step(xb, yb, hold) -> (bound, loss, held-out bound or NaN) in nats, by autograd and
    torch.optim.Adam (any device; the reference for the numba engine)."""
    opt = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8)
    state = {"log_ma": None}  # log of MINE's moving average of mean exp T(marginal)

    def bound_of(xb, yb):
        """(bound, (t_joint, t_marginal) for MINE's moving average, else None) on one batch."""
        if kind == "infonce":
            if form == "fused":  # softplus and log-sum-exp fused too: no b x b torch ops
                return infonce_from_rows(_critic.fused_infonce_rows(net, xb, yb)), None
            return infonce_bound(_infonce_scores(net, xb, yb, form)), None
        b = xb.shape[0]
        idx = torch.randint(b, (b,), generator=gen).to(dev)  # CLUB's MINE: with replacement
        t_joint = _pair_values(net, xb, yb)
        t_marg = _pair_values(net, xb, yb[idx])
        if kind == "mine":
            return dv_bound(t_joint, t_marg), (t_joint, t_marg)
        if kind == "smile":
            return smile_bound(t_joint, t_marg, clip), None
        return nwj_bound(t_joint, t_marg), None

    def step(xb, yb, hold):
        bound, extra = bound_of(xb, yb)
        if kind == "mine" and ema is not None:
            t_joint, t_marg = extra
            lme = log_mean_exp(t_marg)
            log_ma = _ema_update(state["log_ma"], float(lme.detach()), ema)
            state["log_ma"] = log_ma
            # Belghazi et al. 2018, section 3.2: the gradient of log E_Q[e^T] is
            # grad E_Q[e^T] / E_Q[e^T]; the denominator is replaced by its moving
            # average. Surrogate whose gradient is exactly that.
            loss = -(t_joint.mean() - torch.exp(lme - log_ma))
        else:
            loss = -bound
        held = math.nan
        if hold is not None:
            with torch.no_grad():
                held = float(bound_of(*hold)[0])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(bound.detach()), float(loss.detach()), held

    return step


def _numba_stepper(kind, net, gen, lr, ema, clip, b_max):
    """step(xb, yb, hold) -> (bound, loss, held-out bound or NaN) for MINE, NWJ and SMILE on
    the CPU: forward, gradient, backward and Adam in one numba call (_critic._pair_step) on
    numpy copies of the critic's parameters (numpy batches in the critic's dtype)."""
    first, last = net[0], net[2]
    params = tuple(
        np.ascontiguousarray(p.detach().cpu().numpy())
        for p in (first.weight.T, first.bias, last.weight.reshape(-1), last.bias.reshape(1))
    )
    moments = (tuple(np.zeros_like(p) for p in params), tuple(np.zeros_like(p) for p in params))
    grads = tuple(np.zeros_like(p) for p in params)
    h = params[1].shape[0]
    pre = np.empty((h, 2 * b_max), dtype=params[0].dtype)
    xt = np.empty((params[0].shape[0], 2 * b_max), dtype=params[0].dtype)
    t = np.empty(2 * b_max, dtype=params[0].dtype)
    g = np.empty(2 * b_max, dtype=np.float64)
    code = _PAIR_KINDS[kind]
    tau = float(clip) if clip is not None else math.inf
    cap = math.log(float(np.finfo(params[0].dtype).max)) - 4.0  # as bounds._exp_cap
    rate = float(ema) if kind == "mine" and ema is not None else 0.0
    state = {"step": 0, "log_ma": math.nan}

    def fits(b, what):
        # the kernels index these buffers without bounds checks: a batch larger than the one
        # they were sized for would write past them
        if b > b_max:
            raise ValueError(f"{what} batch of {b} rows exceeds the {b_max} rows the numba "
                             f"step's buffers were sized for")

    def draw(b):
        return torch.randint(b, (b,), generator=gen).numpy()  # CLUB's MINE: with replacement

    def step(xb, yb, hold):
        fits(xb.shape[0], "training")
        idx = draw(xb.shape[0])
        held = math.nan
        if hold is not None:  # the critic before the update, as the torch engine
            fits(hold[0].shape[0], "held-out")
            hidx = draw(hold[0].shape[0])
            held = float(_critic._pair_eval(code, *hold, hidx, params, tau, cap, xt, pre, t))
        state["step"] += 1
        bound, loss, state["log_ma"] = _critic._pair_step(
            code, xb, yb, idx, params, moments, state["step"], lr, tau, cap, rate,
            state["log_ma"], xt, pre, t, g, grads,
        )
        return float(bound), float(loss), held

    return step


# ----------------------------------------------------------------------------- training
def _progress(progress, total: int):
    if progress is False or progress is None:
        return None, None
    if callable(progress):
        return None, progress
    if progress is True:
        from tqdm.auto import tqdm

        return tqdm(total=total, unit="step", leave=False, mininterval=1.0), None
    raise ValueError(f"progress must be False, True or a callable(step, row), got {progress!r}")


def _train(kind, x, y, *, threads=None, **options):
    if threads is None:
        return _fit(kind, x, y, **options)
    threads = _int(threads, "threads", 1)
    import numba

    before = (torch.get_num_threads(), numba.get_num_threads())
    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        return _fit(kind, x, y, **options)
    finally:
        torch.set_num_threads(before[0])
        numba.set_num_threads(before[1])


def _fit(
    kind,
    x,
    y,
    *,
    hidden,
    lr,
    epochs,
    batch_size,
    seed,
    device,
    shuffle,
    holdout,
    last,
    ema,
    progress,
    form,
    dtype,
    clip=None,
    engine="auto",
):
    x, y, hidden, lr, epochs, batch_size, seed, holdout, last, dev, dtype = _check(
        x, y, hidden, lr, epochs, batch_size, seed, holdout, last, device, dtype
    )
    if not isinstance(shuffle, bool):
        raise ValueError(f"shuffle must be True or False, got {shuffle!r}")  # noqa: TRY004
    if ema is not None:
        if isinstance(ema, bool) or not isinstance(ema, numbers.Real) or not (0 < ema <= 1):
            raise ValueError(f"ema must be None or a moving-average rate in (0, 1], got {ema!r}")
        ema = float(ema)
    if form not in FORMS:
        raise ValueError(f"form must be one of {list(FORMS)}, got {form!r}")
    if form == "auto":
        form = "fused" if dev.type == "cpu" else "broadcast"
    if form == "fused" and dev.type != "cpu":
        raise ValueError("form='fused' runs on the CPU only (numba); use 'broadcast' on CUDA")

    n = x.shape[0]
    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed)
    # Held-out split: a seeded random subset of round(holdout * n) rows (kept in row order).
    if holdout > 0:
        n_hold = round(holdout * n)
        if n_hold < 2 or n - n_hold < 2:
            raise ValueError(
                f"holdout = {holdout} of n = {n} leaves {n_hold} held-out and {n - n_hold} "
                f"training rows; each needs at least 2"
            )
        perm = torch.randperm(n, generator=gen).numpy()
        hold_idx, train_idx = np.sort(perm[:n_hold]), np.sort(perm[n_hold:])
        xh = torch.as_tensor(x[hold_idx], dtype=dtype, device=dev)
        yh = torch.as_tensor(y[hold_idx], dtype=dtype, device=dev)
        x, y = x[train_idx], y[train_idx]
        n = x.shape[0]
        hold_spans = _batches(n_hold, batch_size)
    xt = torch.as_tensor(x, dtype=dtype, device=dev)
    yt = torch.as_tensor(y, dtype=dtype, device=dev)
    spans = _batches(n, batch_size)

    net = _make_critic(x.shape[1] + y.shape[1], hidden, kind == "infonce", seed, dtype, dev)
    if engine == "auto":
        engine = "numba" if dev.type == "cpu" and kind in _PAIR_KINDS else "torch"
    if engine == "numba":
        # scratch buffers hold the largest batch of either kind: with holdout > 0.5 a held-out
        # batch can be larger than every training batch
        widest = max(hi - lo for lo, hi in spans + (hold_spans if holdout > 0 else []))
        step_fn = _numba_stepper(kind, net, gen, lr, ema, clip, widest)
        xt, yt = np.ascontiguousarray(x, dtype=_NP[dtype]), np.ascontiguousarray(y, dtype=_NP[dtype])
        if holdout > 0:
            xh, yh = xh.cpu().numpy(), yh.cpu().numpy()
    else:
        step_fn = _torch_stepper(kind, net, gen, dev, lr, ema, clip, form)

    total = epochs * len(spans)
    bar, callback = _progress(progress, total)
    rows = {c: [] for c in TRACE_COLUMNS}
    step = 0
    start = time.perf_counter()
    try:
        for epoch in range(epochs):
            order = torch.randperm(n, generator=gen) if shuffle else None
            if order is not None:
                order = order.numpy() if engine == "numba" else order.to(dev)
            for bi, (lo, hi) in enumerate(spans):
                if order is None:
                    xb, yb = xt[lo:hi], yt[lo:hi]
                else:
                    sel = order[lo:hi]
                    xb, yb = xt[sel], yt[sel]
                hold = None
                if holdout > 0:  # one held-out batch per step, cycling
                    hlo, hhi = hold_spans[step % len(hold_spans)]
                    hold = (xh[hlo:hhi], yh[hlo:hhi])
                est, loss, held = step_fn(xb, yb, hold)
                _check_step(kind, step, epoch, bi, est, loss, held if holdout > 0 else 0.0)
                row = {
                    "step": step,
                    "epoch": epoch,
                    "batch": bi,
                    "estimate_nats": est,
                    "loss": loss,
                    "heldout_nats": held,
                }
                for key, value in row.items():
                    rows[key].append(value)
                if callback is not None:
                    callback(step, dict(row))
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(estimate=f"{est:.4f} nats", refresh=False)
                step += 1
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    trace = pd.DataFrame(
        {
            "step": np.asarray(rows["step"], dtype=np.int64),
            "epoch": np.asarray(rows["epoch"], dtype=np.int64),
            "batch": np.asarray(rows["batch"], dtype=np.int64),
            "estimate_nats": np.asarray(rows["estimate_nats"], dtype=np.float64),
            "loss": np.asarray(rows["loss"], dtype=np.float64),
            "heldout_nats": np.asarray(rows["heldout_nats"], dtype=np.float64),
        }
    )
    column = "heldout_nats" if holdout > 0 else "estimate_nats"
    with np.errstate(over="ignore"):  # a diverged trace may sum to -inf: reported below
        estimate = float(trace[column].to_numpy()[-last:].mean())
    _check_end(kind, trace[column].to_numpy(), estimate)
    return NeuralResult(estimate=estimate, trace=trace, device=str(dev), seconds=seconds)


_COMMON_DOC = """
    Parameters
    ----------
    x : (n,) or (n, d_x) real array (numpy or torch).
    y : (n,) or (n, d_y) real array with the same n.
    hidden : int >= 1, critic width h (thesis: 10, 20, 30).
    lr : float > 0, Adam learning rate (betas 0.9, 0.999, eps 1e-8).
    epochs : int >= 1, passes over the batches.
    batch_size : int >= 2, rows per batch (thesis: 3334; clipped to n).
    seed : int >= 0; fixes the critic's initialisation, the marginal draws, the shuffles and
        the held-out split. The same seed on the same device gives an identical result.
    device : "auto" (CUDA if available, else CPU), "cpu" or "cuda[:k]".
    shuffle : False (thesis: fixed batches in row order) or True (a seeded reshuffle of the
        rows before every epoch).
    holdout : fraction in [0, 1) of rows (a seeded random subset) kept out of training; if
        > 0, every step also evaluates the bound on one held-out batch (cycling through the
        held-out batches) with the critic before the update (``heldout_nats``), and the
        estimate is the mean of the last ``last`` held-out values.
    last : int >= 1, number of final per-step estimates averaged (thesis: 20; all steps if
        fewer were taken).
    progress : False, True (tqdm bar on stderr, current estimate in the postfix) or a
        callable ``progress(step, row)`` called once per step with the trace row as a dict.
    dtype : "float32" (thesis, default) or "float64".
    threads : int >= 1 (default 1) or None: torch and numba use that many threads during
        the call (restored afterwards); None leaves their settings as they are (torch's
        default is every core). One thread is the fast choice for these small critics: MINE,
        NWJ and SMILE run their whole step in one single-threaded numba call anyway, and on a
        busy machine a 2-thread step can be 10-100 times slower than a 1-thread one. InfoNCE
        on large batches (b >= ~1000) gains from more threads on an idle machine. The same
        seed and thread count give bit-identical results; InfoNCE's fused kernels give the
        same bits for any thread count, the torch-based forms ("broadcast", "tiled", CUDA)
        and torch's first-layer products may differ in the last bits between thread counts.
"""

_RAISES_DOC = """
    Raises
    ------
    ValueError
        Mismatched n, NaN/inf, n < 2, a 3-D input, hidden < 1, lr <= 0, epochs < 1,
        batch_size < 2, holdout outside [0, 1) or leaving fewer than 2 rows on either side,
        last < 1, threads < 1, an unknown device or CUDA unavailable, a bad progress
        value{extra}.
    TrainingDiverged (a RuntimeError)
        The training diverged: the loss or the bound of some step became non-finite (NaN or
        inf), or the final estimate is more than 10 nats below the bound of the zero critic
        T = 0. The message and the ``step`` attribute give the step.
"""


def mine_mi(
    x,
    y,
    *,
    hidden: int = 30,
    lr: float = 0.005,
    epochs: int = 300,
    batch_size: int = 3334,
    seed: int = 0,
    device: str = "auto",
    shuffle: bool = False,
    holdout: float = 0.0,
    last: int = 20,
    ema: float | None = None,
    progress=False,
    dtype: str = "float32",
    threads: int | None = 1,
) -> NeuralResult:
    """MINE estimate of I(X; Y) in nats: the Donsker-Varadhan bound trained with a critic MLP.

    Belghazi et al. 2018 (MINE), eq. 6 and Algorithm 1; thesis section 3.4 and 4.2.2. On each
    batch of b rows, ``T(x_i, y_i)`` are the joint samples and ``T(x_i, y_s(i))``, s(i)
    drawn uniformly *with replacement* from the batch (as the CLUB repository's MINE class the
    thesis used), the marginal samples; the bound is :func:`~mipipe.estimators.dv_bound`.

    ema : None (default, as the thesis: plain gradient of the bound) or a rate alpha in
        (0, 1]: the bias-corrected gradient of Belghazi et al. 2018, section 3.2, where the
        denominator E_Q[e^T] of the gradient of log E_Q[e^T] is replaced by the moving
        average ``m <- (1 - alpha) m + alpha * mean_batch e^T`` (kept in log space; m starts
        at the first batch's value). The reported estimate is still the DV bound; ``loss``
        is then the surrogate ``-(mean T_joint - mean e^T_marginal / m)``.
    {common}
    Returns
    -------
    NeuralResult (estimate in nats, per-step trace, device, seconds).
    {raises}"""
    return _train("mine", form="auto", **locals())


def nwj_mi(
    x,
    y,
    *,
    hidden: int = 30,
    lr: float = 0.005,
    epochs: int = 300,
    batch_size: int = 3334,
    seed: int = 0,
    device: str = "auto",
    shuffle: bool = False,
    holdout: float = 0.0,
    last: int = 20,
    progress=False,
    dtype: str = "float32",
    threads: int | None = 1,
) -> NeuralResult:
    """NWJ estimate of I(X; Y) in nats: ``mean T(joint) - mean exp(T(marginal) - 1)``.

    Nguyen, Wainwright & Jordan 2010; Poole et al. 2019, eq. 8; mentioned in thesis section 3.
    Same critic, batches and marginal draws (with replacement) as :func:`mine_mi`; the bound
    is :func:`~mipipe.estimators.nwj_bound` (optimal critic 1 + log density ratio).
    {common}
    Returns
    -------
    NeuralResult (estimate in nats, per-step trace, device, seconds).
    {raises}"""
    return _train("nwj", form="auto", ema=None, **locals())


def smile_mi(
    x,
    y,
    *,
    clip: float = 5.0,
    hidden: int = 30,
    lr: float = 0.005,
    epochs: int = 300,
    batch_size: int = 3334,
    seed: int = 0,
    device: str = "auto",
    shuffle: bool = False,
    holdout: float = 0.0,
    last: int = 20,
    progress=False,
    dtype: str = "float32",
    threads: int | None = 1,
) -> NeuralResult:
    """SMILE estimate of I(X; Y) in nats: the DV bound with the critic clipped in its
    partition term, ``mean T(joint) - log mean exp(clip(T(marginal), -clip, clip))``.

    Song & Ermon 2020 ("Understanding the limitations of variational mutual information
    estimators", ICLR 2020), eq. 17; the bound is :func:`~mipipe.estimators.smile_bound`.
    Clipping bounds the variance of the partition term (their Theorem 3; MINE's grows like
    e^I), at a bias that vanishes as ``clip`` grows. As in the paper, the critic is trained on
    the Jensen-Shannon objective (:func:`~mipipe.estimators.bounds.js_bound`; the gradient of
    the clipped DV value alone would let T(joint) grow without limit) and the per-step
    estimate is the SMILE value on that batch. Same critic, batches and marginal draws (with
    replacement) as :func:`mine_mi`; ``loss`` in the trace is minus the SMILE value.

    clip : float > 0, tau in nats (the paper: 1, 5, infinity; default 5). ``math.inf``
        gives the plain DV value of the JS-trained critic.
    {common}
    Returns
    -------
    NeuralResult (estimate in nats, per-step trace, device, seconds).
    {raises}"""
    clip = _check_clip(clip)
    return _train("smile", form="auto", ema=None, **locals())


def infonce_mi(
    x,
    y,
    *,
    hidden: int = 30,
    lr: float = 0.005,
    epochs: int = 300,
    batch_size: int = 3334,
    seed: int = 0,
    device: str = "auto",
    shuffle: bool = False,
    holdout: float = 0.0,
    last: int = 20,
    progress=False,
    form: str = "auto",
    dtype: str = "float32",
    threads: int | None = 1,
) -> NeuralResult:
    """InfoNCE estimate of I(X; Y) in nats, never above log(batch size).

    van den Oord et al. 2018, eq. 4; thesis section 3.3 (Theorem 3.5, Remark 3.5) and 4.2.2.
    On each batch of b rows the critic F = softplus(MLP([x; y])) scores all b x b pairs,
    ``scores[i, j] = F(x_j, y_i)``, and the bound is
    :func:`~mipipe.estimators.infonce_bound`. The b x b x h hidden layer never has to exist:
    the first layer splits into W_x x + W_y y (shared/README.md section 1).

    form : "auto" (fused on the CPU, broadcast on CUDA), "fused" (numba forward and backward
        kernels, O(b h + b^2) memory, CPU only, bit-reproducible), "broadcast" ((1, b, h) +
        (chunk, 1, h) in torch, row chunks recomputed in the backward pass so one chunk's
        hidden layer is alive at a time; any device) or "tiled" (the thesis's (b, b, dx + dy)
        tile; reference, O(b^2 (dx + dy + h)) memory). All give the same critic to float
        tolerance.
    {common}
    Returns
    -------
    NeuralResult (estimate in nats, per-step trace, device, seconds).
    {raises}"""
    return _train("infonce", ema=None, **locals())


for _f, _extra in (
    (mine_mi, ", ema outside (0, 1]"),
    (nwj_mi, ""),
    (smile_mi, ", clip <= 0"),
    (infonce_mi, ", an unknown form or form='fused' on CUDA"),
):
    _f.__doc__ = _f.__doc__.format(
        common=_COMMON_DOC.strip("\n"), raises=_RAISES_DOC.format(extra=_extra).strip("\n")
    )
del _f, _extra
