"""Variational lower bounds on mutual information, apart from any network.

Each function takes critic values (torch tensors) and returns a differentiable 0-d tensor in
nats, so the same formulas serve training (maximise the bound) and checks with a known
critic (e.g. the analytic log density ratio of a Gaussian). Log-mean-exp is always computed
as ``logsumexp - log n``, so large critic outputs (100, 1000) neither overflow nor give NaN.

* :func:`dv_bound` -- Donsker-Varadhan bound used by MINE (Belghazi et al. 2018, eq. 6;
  thesis Theorem 3.6).
* :func:`nwj_bound` -- Nguyen-Wainwright-Jordan (f-divergence) bound (Nguyen et al. 2010;
  Poole et al. 2019, eq. 8 "NWJ"/"f-GAN KL"; mentioned in thesis section 3).
* :func:`smile_bound` -- SMILE: the DV bound with the critic clipped to [-tau, tau] in the
  partition term, its gradient that of the Jensen-Shannon (f-GAN) bound (Song & Ermon 2020,
  eq. 17).
* :func:`infonce_bound` -- InfoNCE bound (van den Oord et al. 2018; thesis section 3.3,
  Theorem 3.5), never above log b.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

__all__ = ["dv_bound", "infonce_bound", "js_bound", "log_mean_exp", "nwj_bound", "smile_bound"]


def _check_values(t, name: str, ndim: int | None = None) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch tensor, got {type(t).__name__}")  # noqa: TRY004
    if not torch.is_floating_point(t):
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if t.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)})")
    if ndim is not None and t.dim() != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {tuple(t.shape)}")
    return t


def _check_pair(t_joint, t_marginal) -> None:
    _check_values(t_joint, "t_joint")
    _check_values(t_marginal, "t_marginal")


def log_mean_exp(t: torch.Tensor, dim=None) -> torch.Tensor:
    """``log mean exp(t)`` computed as ``logsumexp(t) - log n`` (no overflow).

    Parameters
    ----------
    t : tensor of any shape.
    dim : None (all elements) or the dimension to reduce.
    """
    if dim is None:
        return torch.logsumexp(t.reshape(-1), dim=0) - math.log(t.numel())
    return torch.logsumexp(t, dim=dim) - math.log(t.shape[dim])


def dv_bound(t_joint: torch.Tensor, t_marginal: torch.Tensor) -> torch.Tensor:
    """Donsker-Varadhan lower bound ``mean T(joint) - log mean exp T(marginal)`` in nats.

    Belghazi et al. 2018 (MINE), eq. 6; thesis Theorem 3.6 / section 3.4. With the optimal
    critic ``T = log p(x, y) / (p(x) p(y)) + const`` it equals I(X; Y) in expectation.

    Parameters
    ----------
    t_joint : (m,) (or any shape) float tensor, critic values on samples of p(x, y).
    t_marginal : (k,) (or any shape) float tensor, critic values on samples of p(x) p(y)
        (e.g. x paired with shuffled y).

    Returns
    -------
    0-d tensor (nats), differentiable in both arguments; finite for any finite inputs.

    Raises
    ------
    ValueError
        A non-tensor, non-floating or empty argument.
    """
    _check_pair(t_joint, t_marginal)
    return t_joint.mean() - log_mean_exp(t_marginal)


class _CappedExp(torch.autograd.Function):
    """exp(z) for z <= M; exp(M) * (1 + log(1 + z - M)) above (value and slope continuous).

    Keeps the NWJ bound finite in the dtype when the critic's outputs are huge: there the bound
    is below -exp(M) (about -1e36 in float32) anyway, and the gradient keeps pushing the
    critic down instead of becoming inf/NaN.
    """

    @staticmethod
    def forward(ctx, z, cap):
        ctx.save_for_backward(z)
        ctx.cap = cap
        big = z > cap
        safe = torch.where(big, torch.full_like(z, cap), z)
        out = torch.exp(safe)
        over = torch.clamp(z - cap, min=0.0)
        return torch.where(big, out * (1.0 + torch.log1p(over)), out)

    @staticmethod
    def backward(ctx, grad):
        (z,) = ctx.saved_tensors
        cap = ctx.cap
        big = z > cap
        safe = torch.where(big, torch.full_like(z, cap), z)
        slope = torch.exp(safe)
        slope = torch.where(big, slope / (1.0 + torch.clamp(z - cap, min=0.0)), slope)
        return grad * slope, None


def _exp_cap(dtype: torch.dtype) -> float:
    # Leave a factor e^4 ~ 55 of head-room below the largest finite value.
    return math.log(torch.finfo(dtype).max) - 4.0


def nwj_bound(t_joint: torch.Tensor, t_marginal: torch.Tensor) -> torch.Tensor:
    """Nguyen-Wainwright-Jordan lower bound ``mean T(joint) - mean exp(T(marginal) - 1)``.

    Nguyen, Wainwright & Jordan 2010; Poole et al. 2019, eq. 8 (I_NWJ). Its optimal critic is
    ``T = 1 + log p(x, y) / (p(x) p(y))``, with which it equals I(X; Y) in expectation. The
    mean of exponentials is formed as ``exp(log_mean_exp(T - 1))``; if that exponent exceeds
    log(dtype max) - 4 (86.7 in float32, 705.8 in float64) the exponential is continued by
    ``e^M (1 + log(1 + z - M))`` so value and gradient stay finite (the bound is then below
    -1e36 in float32; it is no longer exact there, only finite and monotone).

    Parameters
    ----------
    t_joint : (m,) float tensor, critic values on joint samples.
    t_marginal : (k,) float tensor, critic values on product-of-marginals samples.

    Returns a differentiable 0-d tensor (nats); raises ValueError for a non-tensor,
    non-floating or empty argument.
    """
    _check_pair(t_joint, t_marginal)
    z = log_mean_exp(t_marginal - 1.0)
    return t_joint.mean() - _CappedExp.apply(z, _exp_cap(z.dtype))


def js_bound(t_joint: torch.Tensor, t_marginal: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon (f-GAN) objective ``-mean softplus(-T(joint)) - mean softplus(T(marginal))``.

    Nowozin et al. 2016 (f-GAN, the JS divergence's variational form); Poole et al. 2019,
    section 2.4 (I_JS); the training objective of SMILE (Song & Ermon 2020, section 5). Not a
    bound on I(X; Y) in nats itself; its optimal critic is the log density ratio. Value <= 0
    for T = 0: -2 log 2.

    Parameters: t_joint (m,), t_marginal (k,) float tensors. Returns a differentiable 0-d
    tensor; raises ValueError for a non-tensor, non-floating or empty argument.
    """
    _check_pair(t_joint, t_marginal)
    softplus = torch.nn.functional.softplus
    return -softplus(-t_joint).mean() - softplus(t_marginal).mean()


def _check_clip(clip) -> float:
    if isinstance(clip, bool) or not isinstance(clip, numbers.Real) or not (clip > 0):
        raise ValueError(f"clip must be a number > 0 (tau, in nats), got {clip!r}")
    return float(clip)


def smile_bound(t_joint: torch.Tensor, t_marginal: torch.Tensor, clip: float = 5.0) -> torch.Tensor:
    """SMILE estimate ``mean T(joint) - log mean exp(clip(T(marginal), -tau, tau))`` in nats.

    Song & Ermon 2020 ("Understanding the limitations of variational mutual information
    estimators", ICLR), eq. 17: the Donsker-Varadhan bound (:func:`dv_bound`) with the
    critic clipped to [-tau, tau] (``clip`` = tau) in the partition term, which bounds the
    variance of that term by a function of tau (their Theorem 3) at the price of a bias. As in
    the paper's training, the returned tensor's *gradient* is that of :func:`js_bound` (the
    clipped DV value alone would let the joint critic values grow without limit): it is
    ``js + (smile - js).detach()``, whose value is the SMILE estimate. As tau -> infinity the
    value is the DV bound.

    Parameters
    ----------
    t_joint : (m,) float tensor, critic values on joint samples.
    t_marginal : (k,) float tensor, critic values on product-of-marginals samples.
    clip : float > 0, tau (the paper's experiments: 1, 5 and infinity).

    Returns
    -------
    0-d tensor: value in nats (the SMILE estimate), gradient that of the JS objective.

    Raises
    ------
    ValueError
        A non-tensor, non-floating or empty argument, or clip <= 0.
    """
    _check_pair(t_joint, t_marginal)
    tau = _check_clip(clip)
    value = t_joint.mean() - log_mean_exp(torch.clamp(t_marginal, -tau, tau))
    js = js_bound(t_joint, t_marginal)
    return js + (value - js).detach()


def infonce_bound(scores: torch.Tensor) -> torch.Tensor:
    """InfoNCE lower bound on a (b, b) critic matrix, in nats; never above log b.

    ``I_NCE = mean_i [ scores[i, i] - logsumexp_j scores[i, j] ] + log b`` with
    ``scores[i, j] = F(x_j, y_i)``: row i scores every x of the batch against the context
    y_i, and the diagonal holds the positive pairs (van den Oord et al. 2018, eq. 4; thesis
    section 3.3, Remark 3.4 and Theorem 3.5; the CLUB repository's ``InfoNCE`` class).

    Every row term ``scores[i, i] - logsumexp_j scores[i, j]`` is <= 0 in floating point
    (logsumexp is formed as max + log(sum exp(s - max)) with the sum >= 1), and the result is
    additionally capped at the largest value of the dtype not above log b, so the returned
    value never exceeds log b, however large the scores.

    Parameters
    ----------
    scores : (b, b) float tensor, b >= 1.

    Returns
    -------
    0-d tensor (nats), differentiable in ``scores``.

    Raises
    ------
    ValueError
        Not a square 2-D floating-point tensor.
    """
    _check_values(scores, "scores", ndim=2)
    b = scores.shape[0]
    if scores.shape[1] != b:
        raise ValueError(f"scores must be square (b, b), got shape {tuple(scores.shape)}")
    return infonce_from_rows(torch.diagonal(scores) - torch.logsumexp(scores, dim=1))


def infonce_from_rows(rows: torch.Tensor) -> torch.Tensor:
    """InfoNCE bound from its (b,) row terms ``scores[i, i] - logsumexp_j scores[i, j]``
    (each <= 0): ``mean_i rows_i + log b``, capped at the largest value of the dtype not
    above log b (float32 rounding of log b could otherwise exceed it by one ulp)."""
    b = rows.shape[0]
    log_b = math.log(b)
    value = torch.clamp(rows, max=0.0).mean() + log_b
    np_dtype = np.float32 if rows.dtype == torch.float32 else np.float64
    cap = np_dtype(log_b)
    if float(cap) > log_b:
        cap = np.nextafter(cap, np_dtype(-np.inf))
    return torch.clamp(value, max=float(cap))
