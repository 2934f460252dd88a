"""Latent MI (LMI): KSG between learned low-dimensional representations (Gowri et al. 2024).

Gowri, Lun, Klein & Yin 2024, "Approximating mutual information of high-dimensional
variables using learned representations", NeurIPS (arXiv 2409.02732), section 3 and
Appendix A; their package ``latentmi`` 0.1.3 (models.AECross, lmi.estimate). Protocol:

1. Standardise every column of x and y (a constant column becomes 0) and clip to [-10, 10].
2. Split the rows at random into a training and a validation half (``validation_split``).
3. Train two autoencoders with cross-prediction, the paper's architecture: encoders
   d -> L -> L/2 -> L/4 -> latent_dim, decoders latent_dim -> L/4 -> L/2 -> L -> d, and the
   cross decoders (Z_x -> y, Z_y -> x) of the same shape with Dropout(0.5) before every
   layer; LeakyReLU(0.2) after every layer but the decoders' last (the encoders' output
   too); L = 1024 (2^floor(log2 d) for d > 2048); Xavier-uniform weights, zero biases. Loss
   (MSE, means over rows and columns):
   lam (|x - D_yx(E_y y)|^2 + |y - D_xy(E_x x)|^2) + alpha (|x - D_xx(E_x x)|^2 + |y - D_yy(E_y y)|^2).
   Adam (lr 1e-4, eps 1e-7), batches of 512 reshuffled every epoch, at most 300 epochs,
   early stopping when the mean validation loss has not improved for ``patience`` (30)
   epochs, keeping the weights of the best epoch.
4. Encode all rows (dropout off) and estimate I(Z_x; Z_y) by KSG1 (k = 3, max norm, as the
   package's NPEET-derived ``ksg.mi``) on the validation rows.

Deviation from the package: its EarlyStopper keeps a reference to ``state_dict()`` (the live
tensors), so it restores the *last* weights; here the best epoch's weights are copied and
restored, as its docstring ("returns best weights") intends. The package reports bits; this
reports nats. Meant for high-dimensional data with low-dimensional structure: LMI
estimates I(Z_x; Z_y) <= I(X; Y), which equals I(X; Y) only when the latents keep the
shared information.
"""

from __future__ import annotations

import copy
import math
import numbers
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .ksg import ksg_mi
from .neural import _check, _int, _progress

__all__ = ["LatentResult", "latent_mi"]

LATENT_TRACE_COLUMNS = ("epoch", "loss", "heldout_loss")


@dataclass(frozen=True)
class LatentResult:
    """Result of :func:`latent_mi`.

    estimate : float, nats, KSG1 on the validation rows' latents.
    trace : DataFrame, one row per epoch: ``epoch`` (int64), ``loss`` (mean training batch
        loss) and ``heldout_loss`` (mean validation loss), float64.
    best_epoch : int, the epoch whose weights encoded the data.
    zx, zy : (n, latent_dim) float64 latents of all rows.
    device : str; seconds : float, wall time of training and encoding.
    """

    estimate: float
    trace: pd.DataFrame
    best_epoch: int
    zx: np.ndarray
    zy: np.ndarray
    device: str
    seconds: float

    def __float__(self) -> float:
        return float(self.estimate)


def _stack(sizes, dropout, last_act):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        if dropout:
            layers.append(torch.nn.Dropout(p=0.5))
        layers.append(torch.nn.Linear(a, b))
        if last_act or i < len(sizes) - 2:
            layers.append(torch.nn.LeakyReLU(negative_slope=0.2))
    return torch.nn.Sequential(*layers)


def _width(d, width):
    if width is not None:
        return width
    return int(2 ** math.floor(math.log2(d))) if d > 2048 else 1024


class CrossAE(torch.nn.Module):
    """The paper's paired autoencoders with cross-predictive regularisation (AECross)."""

    def __init__(self, dx, dy, latent_dim, width=None, alpha=1.0, lam=1.0):
        super().__init__()
        lx, ly = _width(dx, width), _width(dy, width)
        down = lambda d, w: [d, w, w // 2, w // 4, latent_dim]  # noqa: E731
        self.ex = _stack(down(dx, lx), False, True)
        self.ey = _stack(down(dy, ly), False, True)
        self.dxx = _stack(down(dx, lx)[::-1], False, False)
        self.dyy = _stack(down(dy, ly)[::-1], False, False)
        self.dyx = _stack(down(dx, lx)[::-1], True, False)  # Z_y -> x
        self.dxy = _stack(down(dy, ly)[::-1], True, False)  # Z_x -> y
        self.alpha, self.lam = alpha, lam
        for m in self.modules():
            if isinstance(m, torch.nn.Linear):
                torch.nn.init.xavier_uniform_(m.weight)
                torch.nn.init.zeros_(m.bias)

    def loss(self, x, y):
        mse = torch.nn.functional.mse_loss
        zx, zy = self.ex(x), self.ey(y)
        auto = mse(self.dxx(zx), x) + mse(self.dyy(zy), y)
        cross = mse(self.dyx(zy), x) + mse(self.dxy(zx), y)
        return self.lam * cross + self.alpha * auto


def _standardise(a):
    a = a - a.mean(axis=0)
    sd = a.std(axis=0)
    return np.clip(np.divide(a, sd, out=np.zeros_like(a), where=sd > 0), -10, 10)


def _real(value, name, low, high=math.inf):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
        low <= value < high and math.isfinite(value)
    ):
        raise ValueError(f"{name} must be a finite number in [{low}, {high}), got {value!r}")
    return float(value)


def latent_mi(
    x,
    y,
    *,
    latent_dim: int = 8,
    width: int | None = None,
    alpha: float = 1.0,
    lam: float = 1.0,
    lr: float = 1e-4,
    epochs: int = 300,
    patience: int = 30,
    batch_size: int = 512,
    validation_split: float = 0.5,
    k: int = 3,
    seed: int = 0,
    device: str = "auto",
    progress=False,
    dtype: str = "float32",
    threads: int | None = None,
) -> LatentResult:
    """Latent MI estimate in nats (Gowri et al. 2024, section 3; protocol in the module
    docstring): KSG1 between the latents of the paper's cross-predictive autoencoders.

    Parameters
    ----------
    x : (n,) or (n, d_x) real array (numpy or torch); y : (n,) or (n, d_y), same n.
    latent_dim : int >= 1, size of each latent (paper: 8; the package's N_dims).
    width : None (the paper's L: 1024, or 2^floor(log2 d) for d > 2048) or an int >= 4,
        the first hidden width L of every network (L/2, L/4 follow).
    alpha, lam : weights >= 0 of the autoencoding and cross-prediction losses (paper: 1, 1).
    lr : Adam learning rate (paper 1e-4; Adam eps 1e-7).
    epochs : int >= 1, most epochs; patience : int >= 1, early stopping (paper: 300, 30).
    batch_size : int >= 2 (paper: 512), rows per batch, reshuffled every epoch.
    validation_split : fraction in (0, 1) of rows held out for early stopping and used for
        the KSG estimate (paper: 0.5).
    k : KSG neighbours (paper's NPEET: 3), max norm.
    seed : int >= 0: the split, initialisation, dropout and shuffles.
    device, progress, dtype, threads : as :func:`mine_mi`.

    Returns
    -------
    LatentResult (estimate in nats, per-epoch trace, best epoch, latents, device, seconds).

    Raises
    ------
    ValueError
        Bad x/y (as :func:`mine_mi`), latent_dim < 1, width < 4, negative alpha/lam, bad
        lr/epochs/patience/batch_size/seed/device/dtype/threads, validation_split outside
        (0, 1) or leaving fewer than max(2, k + 1) rows on either side; KSG errors on the
        latents (e.g. collapsed latents, repeated points).
    """
    x, y, latent_dim, lr, epochs, batch_size, seed, _, _, dev, dtype = _check(
        x, y, latent_dim, lr, epochs, batch_size, seed, 0.0, 1, device, dtype
    )
    patience = _int(patience, "patience", 1)
    k = _int(k, "k", 1)
    if width is not None:
        width = _int(width, "width", 4)
    alpha, lam = _real(alpha, "alpha", 0.0), _real(lam, "lam", 0.0)
    validation_split = _real(validation_split, "validation_split", 0.0, 1.0)
    n = x.shape[0]
    n_val = round(validation_split * n)
    if min(n_val, n - n_val) < max(2, k + 1):
        raise ValueError(
            f"validation_split = {validation_split} of n = {n} leaves {n - n_val} training "
            f"and {n_val} validation rows; each needs at least {max(2, k + 1)}"
        )
    if threads is not None:
        threads = _int(threads, "threads", 1)
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
    try:
        return _fit(x, y, latent_dim, width, alpha, lam, lr, epochs, patience, batch_size,
                    n_val, k, seed, dev, dtype, progress)
    finally:
        if threads is not None:
            torch.set_num_threads(before)


def _train(model, opt, gen, xs, ys, train, val, batch_size, epochs, patience, rows, bar,
           callback):
    """Adam epochs with early stopping; returns (best state, best epoch)."""
    best, best_epoch, best_state, waited = math.inf, 0, None, 0
    for epoch in range(epochs):
        model.train()
        order = train[torch.randperm(len(train), generator=gen).to(train.device)]
        losses = []
        for lo in range(0, len(train), batch_size):
            sel = order[lo:lo + batch_size]
            loss = model.loss(xs[sel], ys[sel])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        model.eval()
        with torch.no_grad():
            held = [float(model.loss(xs[val[lo:lo + batch_size]], ys[val[lo:lo + batch_size]]))
                    for lo in range(0, len(val), batch_size)]
        row = {"epoch": epoch, "loss": float(np.mean(losses)), "heldout_loss": float(np.mean(held))}
        rows.append(row)
        if callback is not None:
            callback(epoch, dict(row))
        if bar is not None:
            bar.update(1)
        if row["heldout_loss"] < best:
            best, best_epoch, waited = row["heldout_loss"], epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            waited += 1
            if waited >= patience:
                break
    return best_state, best_epoch


def _fit(x, y, latent_dim, width, alpha, lam, lr, epochs, patience, batch_size, n_val, k,
         seed, dev, dtype, progress):
    start = time.perf_counter()
    n = x.shape[0]
    perm = np.random.default_rng(seed).permutation(n)
    val = torch.as_tensor(np.sort(perm[:n_val]), device=dev)
    train = torch.as_tensor(np.sort(perm[n_val:]), device=dev)
    xs = torch.as_tensor(_standardise(x), dtype=dtype, device=dev)
    ys = torch.as_tensor(_standardise(y), dtype=dtype, device=dev)
    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed)
    bar, callback = _progress(progress, epochs)
    rows = []
    # initialisation and dropout use the global generator: a private copy seeded with
    # ``seed`` (the caller's state is kept), so the same seed gives the same result
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        model = CrossAE(x.shape[1], y.shape[1], latent_dim, width, alpha, lam)
        model = model.to(device=dev, dtype=dtype)
        opt = torch.optim.Adam(model.parameters(), lr=lr, eps=1e-7)
        try:
            best_state, best_epoch = _train(model, opt, gen, xs, ys, train, val, batch_size,
                                            epochs, patience, rows, bar, callback)
        finally:
            if bar is not None:
                bar.close()
    if best_state is None:
        raise FloatingPointError("latent_mi diverged: the validation loss was never finite")
    model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        zx = model.ex(xs).double().cpu().numpy()
        zy = model.ey(ys).double().cpu().numpy()
    v = val.cpu().numpy()
    try:
        estimate = ksg_mi(zx[v], zy[v], k=k, jitter=1e-10, seed=seed)
    except ValueError as exc:
        raise ValueError(f"latent_mi: KSG on the learned latents failed: {exc}") from exc
    trace = pd.DataFrame(rows, columns=list(LATENT_TRACE_COLUMNS)).astype(
        {"epoch": np.int64, "loss": np.float64, "heldout_loss": np.float64}
    )
    return LatentResult(estimate=float(estimate), trace=trace, best_epoch=best_epoch, zx=zx,
                        zy=zy, device=str(dev), seconds=time.perf_counter() - start)
