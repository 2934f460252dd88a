"""CLUB: the contrastive log-ratio upper bound on mutual information (Cheng et al. 2020).

Cheng, Hao, Dai, Liu, Gan & Carin 2020, "CLUB: A Contrastive Log-ratio Upper Bound of Mutual
Information", ICML, eq. 9 (the vCLUB estimate with a variational q_theta(y|x)) and
Algorithm 1: on each batch the bound

    I_vCLUB = 1/b sum_i log q(y_i|x_i) - 1/b^2 sum_i sum_j log q(y_j|x_i)

is evaluated, then q is improved by one step on its log-likelihood 1/b sum_i log q(y_i|x_i).
q(y|x) = N(mu(x), diag exp(logvar(x))), with mu = Linear(d_x, h) -> ReLU -> Linear(h, d_y)
and logvar = Linear(d_x, h) -> ReLU -> Linear(h, d_y) -> Tanh, as the CLUB class of the
authors' repository (Linear99/CLUB, mi_estimators.py; its hidden_size // 2 is h here). The
log-variance cancels in the bound (same x_i in both terms), so

    I_vCLUB = 1/b sum_i sum_c [(mean_j (y_jc - mu_ic)^2 - (y_ic - mu_ic)^2) / (2 exp(logvar_ic))].

It is an upper bound on I(X; Y) when q is close to p(y|x) (their Theorem 3.2); with the exact
Gaussian conditional of a Gaussian pair it equals sum_c rho_c^2 / (1 - rho_c^2) per
independent channel, well above -1/2 sum log(1 - rho_c^2). Units: nats.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import torch

from .neural import (
    _COMMON_DOC,
    _RAISES_DOC,
    TRACE_COLUMNS,
    NeuralResult,
    _batches,
    _check,
    _check_step,
    _int,
    _progress,
)

__all__ = ["club_mi"]


def _mlp(d_in, hidden, d_out, tanh):
    layers = [torch.nn.Linear(d_in, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, d_out)]
    if tanh:
        layers.append(torch.nn.Tanh())
    return torch.nn.Sequential(*layers)


class _Gaussian(torch.nn.Module):
    """q(y|x) = N(mu(x), diag exp(logvar(x)))."""

    def __init__(self, dx, dy, hidden):
        super().__init__()
        self.mu = _mlp(dx, hidden, dy, tanh=False)
        self.logvar = _mlp(dx, hidden, dy, tanh=True)

    def bound(self, x, y):
        """The vCLUB estimate (nats) on one batch; the b x b term in O(b d_y)."""
        mu, logvar = self.mu(x), self.logvar(x)
        inv = torch.exp(-logvar) / 2
        positive = (y - mu) ** 2
        # mean_j (y_j - mu_i)^2 = mean(y^2) - 2 mu_i mean(y) + mu_i^2
        negative = (y**2).mean(0) - 2 * mu * y.mean(0) + mu**2
        return ((negative - positive) * inv).sum(1).mean()

    def log_likelihood(self, x, y):
        """1/b sum_i log q(y_i|x_i) without the -d_y/2 log(2 pi) constant."""
        mu, logvar = self.mu(x), self.logvar(x)
        return (-((y - mu) ** 2) / torch.exp(logvar) / 2 - logvar / 2).sum(1).mean()


def club_mi(
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
    threads: int | None = None,
) -> NeuralResult:
    """CLUB upper bound estimate of I(X; Y) in nats (Cheng et al. 2020, eq. 9, Algorithm 1).

    Same batches, optimiser, seeding, held-out split and trace as :func:`mine_mi`. On each
    batch the bound is evaluated with the current q (``estimate_nats``), then one Adam step
    maximises the log-likelihood of q (``loss`` = its negative, without the constant
    d_y/2 log 2 pi). hidden is the width of the hidden layer of each of the mean and
    log-variance networks of q(y|x) (module docstring).
    {common}
    Returns
    -------
    NeuralResult (estimate in nats, per-step trace, device, seconds).
    {raises}"""
    if threads is None:
        return _fit(**locals())
    threads = _int(threads, "threads", 1)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _fit(**locals())
    finally:
        torch.set_num_threads(before)


club_mi.__doc__ = club_mi.__doc__.format(
    common=_COMMON_DOC.strip("\n"), raises=_RAISES_DOC.format(extra="").strip("\n")
)


def _fit(x, y, *, hidden, lr, epochs, batch_size, seed, device, shuffle, holdout, last,
         progress, dtype, threads, **_):
    x, y, hidden, lr, epochs, batch_size, seed, holdout, last, dev, dtype = _check(
        x, y, hidden, lr, epochs, batch_size, seed, holdout, last, device, dtype
    )
    if not isinstance(shuffle, bool):
        raise ValueError(f"shuffle must be True or False, got {shuffle!r}")  # noqa: TRY004
    n = x.shape[0]
    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed)
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
        hold_spans = _batches(n_hold, batch_size)
        x, y, n = x[train_idx], y[train_idx], n - n_hold
    xt = torch.as_tensor(x, dtype=dtype, device=dev)
    yt = torch.as_tensor(y, dtype=dtype, device=dev)
    spans = _batches(n, batch_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        q = _Gaussian(x.shape[1], y.shape[1], hidden)
    q = q.to(device=dev, dtype=dtype)
    opt = torch.optim.Adam(q.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8)
    bar, callback = _progress(progress, epochs * len(spans))
    rows = []
    start = time.perf_counter()
    try:
        for epoch in range(epochs):
            order = torch.randperm(n, generator=gen).to(dev) if shuffle else None
            for bi, (lo, hi) in enumerate(spans):
                sel = slice(lo, hi) if order is None else order[lo:hi]
                xb, yb = xt[sel], yt[sel]
                with torch.no_grad():
                    est = float(q.bound(xb, yb))
                    held = math.nan
                    if holdout > 0:
                        hlo, hhi = hold_spans[len(rows) % len(hold_spans)]
                        held = float(q.bound(xh[hlo:hhi], yh[hlo:hhi]))
                loss = -q.log_likelihood(xb, yb)
                _check_step("club", len(rows), epoch, bi, est, float(loss.detach()),
                            held if holdout > 0 else 0.0)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                row = (len(rows), epoch, bi, est, float(loss.detach()), held)
                rows.append(row)
                if callback is not None:
                    callback(row[0], dict(zip(TRACE_COLUMNS, row)))
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    trace = pd.DataFrame(rows, columns=list(TRACE_COLUMNS)).astype(
        {"step": np.int64, "epoch": np.int64, "batch": np.int64, "estimate_nats": np.float64,
         "loss": np.float64, "heldout_nats": np.float64}
    )
    column = "heldout_nats" if holdout > 0 else "estimate_nats"
    estimate = float(trace[column].to_numpy()[-last:].mean())
    return NeuralResult(estimate=estimate, trace=trace, device=str(dev), seconds=seconds)
