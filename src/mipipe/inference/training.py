"""SimCLR training, black-box stealing, linear evaluation and embedding extraction.

Sources: SimCLR (Chen et al. 2020); victim/stolen recipes of Dziedzic et al. (2022) as
reproduced in thesis §5.1-5.2 and summarised in shared/README.md §4.
"""

from __future__ import annotations

import logging
import random
import sys
from typing import Callable

import numpy as np
import torch
import torch.utils.data
from torch import nn
from tqdm import tqdm

from .encoders import ProjectionHead, to_input
from .losses import nt_xent, stealing_loss

log = logging.getLogger("mipipe.inference")
HEAD_VARIANTS = ("none", "stolen", "victim", "both", "attacker")
#: variants whose black box answers with the victim's own trained projection head, h_v(g_v(x))
VICTIM_HEAD_VARIANTS = ("victim", "both")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and ask torch for deterministic kernels.

    Same seed and thread count on the CPU -> identical weights; GPU kernels may still differ
    in the last bits between runs.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda when a GPU is present, else cpu; ``cpu``/``cuda``/``cuda:N`` as given.

    Raises ValueError when cuda is asked for and none is present.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: no CUDA GPU is available (use device: auto or cpu)")
    return dev


def _batches(n: int, batch_size: int, generator: torch.Generator | None, drop_last: bool):
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        idx = order[start:start + batch_size]
        if len(idx) >= 2:
            yield idx


class _TwoViews(torch.utils.data.Dataset):
    """Two independent random views of image i (the augmentation runs in the loader)."""

    def __init__(self, images, transform):
        self.images, self.transform = images, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        img = self.images[i]
        return i, self.transform(img), self.transform(img)


def _optimiser(params, lr, weight_decay, epochs):
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    # stepped once per epoch, so T_max = epochs (the original code's T_max was the number of
    # batches per epoch: thesis §5.1)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(int(epochs), 1))
    return opt, sched


def _fit(batch_loss, batches, opt, sched, epochs: int, desc: str) -> list[dict]:
    """The epoch loop: Adam steps on ``batch_loss(idx)`` for each batch of ``batches()``, the
    scheduler stepped once per epoch, a tqdm bar on stderr (the job log).

    Raises FloatingPointError naming the epoch and step (both from 1) at the first
    non-finite loss, before that step updates the weights; the caller then writes no
    checkpoint.
    """
    history = []
    bar = tqdm(range(epochs), desc=desc, file=sys.stderr, mininterval=5.0, ascii=True)
    for epoch in bar:
        total, count = 0.0, 0
        for step, idx in enumerate(batches(), 1):
            loss = batch_loss(idx)
            if not bool(torch.isfinite(loss.detach()).all()):
                raise FloatingPointError(
                    f"{desc}: the training loss is {float(loss.detach())} at epoch "
                    f"{epoch + 1}/{epochs}, step {step}; training stopped and no checkpoint "
                    "was written (lower lr, or raise the temperature)")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        history.append({"epoch": epoch + 1, "loss": total / max(count, 1),
                        "lr": opt.param_groups[0]["lr"]})
        sched.step()
        bar.set_postfix(loss=f"{history[-1]['loss']:.4f}")
        log.info("%s epoch %d/%d: loss %.4f", desc, epoch + 1, epochs, history[-1]["loss"])
    return history


def train_simclr(encoder: nn.Module, head: nn.Module, images: torch.Tensor, *, augmentation,
                 temperature: float, lr: float = 3e-4, weight_decay: float = 1e-4,
                 epochs: int = 200, batch_size: int = 256, seed: int = 0,
                 device="cpu", workers: int = 0, desc: str = "simclr") -> list[dict]:
    """SimCLR: two random views per image, NT-Xent on the projection-head outputs.

    Parameters
    ----------
    encoder, head : modules (trained in place)
    images : (N, C, H, W) uint8 tensor (labels are not used)
    augmentation : callable, one uint8 image -> float view (:func:`simclr_augmentation`)
    temperature : tau of NT-Xent
    lr, weight_decay : Adam's; cosine annealing with T_max = epochs, stepped per epoch
    epochs, batch_size : the last incomplete batch is dropped (as in the original code)
    workers : DataLoader worker processes for the augmentations (0: in this process). The
        draws are seeded from ``seed`` either way, so a run is reproducible for a fixed
        ``workers``.

    Returns
    -------
    One dict per epoch: epoch, loss (mean NT-Xent over batches, nats), lr.
    """
    _check_images(images)
    device = torch.device(device)
    encoder.to(device).train()
    head.to(device).train()
    opt, sched = _optimiser(list(encoder.parameters()) + list(head.parameters()), lr,
                            weight_decay, epochs)
    gen = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(
        _TwoViews(images, augmentation), batch_size=min(batch_size, len(images)), shuffle=True,
        generator=gen, drop_last=True, num_workers=workers, persistent_workers=workers > 0,
        pin_memory=device.type == "cuda")
    views = {}

    def batches():
        for idx, v1, v2_ in loader:
            views["pair"] = (v1, v2_)
            yield idx

    def batch_loss(idx):
        v1, v2_ = (to_input(v).to(device, non_blocking=True) for v in views.pop("pair"))
        return nt_xent(head(encoder(v1)), head(encoder(v2_)), temperature)

    history = _fit(batch_loss, batches, opt, sched, epochs, desc)
    encoder.eval()
    head.eval()
    return history


def black_box(encoder: nn.Module, device="cpu", batch_size: int = 512,
              head: nn.Module | None = None) -> Callable:
    """Serve an encoder as the stealing API: ``query(images (B, C, H, W) uint8) -> (B, d)``
    float32 CPU tensor, computed in eval mode without gradients. Only the function is handed
    to the attacker.

    ``head=None`` returns the encoder's representations g_v(x) (d = encoder width). With the
    victim's own trained projection head it returns h_v(g_v(x)) (d = head output width): the
    original stealing code's ``--victimhead``, where the victim keeps its SimCLR head in the
    checkpoint (Dziedzic et al. 2022; shared/README.md §4).
    """
    device = torch.device(device)
    encoder = encoder.to(device).eval()
    if head is not None:
        head = head.to(device).eval()

    @torch.no_grad()
    def query(images: torch.Tensor) -> torch.Tensor:
        _check_images(images)
        out = []
        for i in range(0, len(images), batch_size):
            z = encoder(to_input(images[i:i + batch_size]).to(device))
            out.append((head(z) if head is not None else z).float().cpu())
        return torch.cat(out)

    return query


def stealing_heads(variant: str, stolen_dim: int, victim_dim: int, head_spec: dict | None):
    """The attacker's trainable layers for a head variant (thesis §5.2, Table 2).

    ``victim_dim`` is the width of the black box's answers: the victim's representations
    for ``none``, ``stolen`` and ``attacker``; the output of the victim's own projection head
    for ``victim`` and ``both`` (serve it with ``black_box(..., head=victim_head)``).

    ``none``: the loss compares g_s(x) with g_v(x) directly (needs equal widths).
    ``stolen``: a projection head on the stolen encoder, h_s(g_s(x)) vs g_v(x).
    ``victim`` (the original code's ``--victimhead``): g_s(x) vs h_v(g_v(x)), h_v being the
    victim's own trained head behind the API. When the widths differ, one linear layer maps
    g_s(x) to the head's width during stealing (the original stolen network ends in a linear
    layer of the output width); it is discarded with the heads.
    ``both``: h_s(g_s(x)) vs the victim's own h_v(g_v(x)).
    ``attacker``: the thesis's reading: the API returns representations and the attacker
    trains a head of its own on them, g_s(x) vs h_a(g_v(x)).
    A projection head's last layer maps to the other side's width. Returns
    (stolen_side, victim_side): an nn.Module or None each.

    Raises ValueError for an unknown variant, or ``none`` with unequal widths.
    """
    if variant not in HEAD_VARIANTS:
        raise ValueError(f"stealing head variant must be one of {HEAD_VARIANTS}, got {variant!r}")
    spec = head_spec or {}
    hidden = int(spec.get("hidden", 512))
    if variant == "none":
        if stolen_dim != victim_dim:
            raise ValueError(f"head variant 'none' needs equal widths: stolen {stolen_dim}, victim {victim_dim}")
        return None, None
    if variant == "victim":
        return (None if stolen_dim == victim_dim else nn.Linear(stolen_dim, victim_dim)), None
    if variant in ("stolen", "both"):
        return ProjectionHead(stolen_dim, hidden, victim_dim), None
    return None, ProjectionHead(victim_dim, hidden, stolen_dim)


def query_victim(query: Callable, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Ask the black box once per image, in order; returns (N, d) float32 representations."""
    reps = [torch.as_tensor(query(images[i:i + batch_size])).float()
            for i in range(0, len(images), batch_size)]
    out = torch.cat(reps)
    if out.ndim != 2 or len(out) != len(images):
        raise ValueError(f"the victim returned shape {tuple(out.shape)} for {len(images)} queries")
    return out


def steal(query: Callable, stolen: nn.Module, images: torch.Tensor, *, variant: str = "none",
          head_spec: dict | None = None, temperature: float = 0.1, lr: float = 3e-4,
          weight_decay: float = 1e-4, epochs: int = 100, batch_size: int = 256,
          shuffle: bool = True, seed: int = 0, device="cpu", desc: str = "steal"):
    """Train ``stolen`` to imitate a victim served only through ``query`` (Dziedzic et al.
    2022; thesis §5.2).

    Each query image is sent to the victim once (the attacker stores the answers); then the
    stolen encoder is trained with :func:`stealing_loss` whose positive pair is
    (stolen(x), victim(x)), Adam + cosine annealing (T_max = epochs). No augmentation.

    Parameters
    ----------
    query : callable, (B, C, H, W) uint8 -> (B, d_v) representations (the black box)
    stolen : the attacker's fresh encoder (trained in place)
    images : (N, C, H, W) uint8, the attacker's query set (N = number of queries)
    variant : none | stolen | victim | both | attacker (see :func:`stealing_heads`); for
        ``victim`` and ``both`` the query must return the victim's own head output
    shuffle : False queries the batches in the same order every epoch (the original code)

    Returns
    -------
    (history, stolen_head, victim_head): per-epoch dicts (epoch, loss, lr) and the heads.
    """
    _check_images(images)
    device = torch.device(device)
    victim_reps = query_victim(query, images)
    stolen.to(device).train()
    s_head, v_head = stealing_heads(variant, stolen.out_dim, victim_reps.shape[1], head_spec)
    params = list(stolen.parameters())
    for h in (s_head, v_head):
        if h is not None:
            h.to(device).train()
            params += list(h.parameters())
    opt, sched = _optimiser(params, lr, weight_decay, epochs)
    gen = torch.Generator().manual_seed(seed) if shuffle else None

    def batch_loss(idx):
        s_out = stolen(to_input(images[idx]).to(device))
        v_out = victim_reps[idx].to(device)
        if s_head is not None:
            s_out = s_head(s_out)
        if v_head is None:
            return stealing_loss(s_out, v_out, temperature)
        return nt_xent(s_out, v_head(v_out), temperature)  # the attacker's head trains too

    history = _fit(batch_loss, lambda: _batches(len(images), batch_size, gen, drop_last=False),
                   opt, sched, epochs, desc)
    stolen.eval()
    return history, s_head, v_head


@torch.no_grad()
def extract_features(encoder: nn.Module, images: torch.Tensor, *, batch_size: int = 512,
                     device="cpu") -> np.ndarray:
    """Representations of ``images`` (N, C, H, W) uint8 -> (N, d) float32, in order, with the
    encoder in eval mode and no gradients."""
    _check_images(images)
    device = torch.device(device)
    encoder = encoder.to(device).eval()
    out = [encoder(to_input(images[i:i + batch_size]).to(device)).float().cpu()
           for i in range(0, len(images), batch_size)]
    if not out:
        return np.zeros((0, getattr(encoder, "out_dim", 0)), dtype=np.float32)
    return torch.cat(out).numpy().astype(np.float32, copy=False)


def linear_eval_features(f_train: np.ndarray, y_train, f_test: np.ndarray, y_test, *,
                         C: float = 1.0, max_iter: int = 1000, standardise: bool = False) -> dict:
    """Linear evaluation on fixed features: fit a multinomial logistic regression (one linear
    layer + softmax, L2 penalty 1/C, L-BFGS) and report accuracy.

    The original code trains a linear layer on the raw features (``standardise=False``);
    ``standardise=True`` first scales each feature to unit variance (training statistics),
    which helps random encoders most (on 8x8 digits a random CNN then reaches ~96 %).

    Parameters
    ----------
    f_train, f_test : (n, d) float arrays; y_train, y_test : (n,) int labels (-1 = unlabelled,
    dropped). C : inverse L2 strength. standardise : scale features first.

    Returns
    -------
    dict: train_acc, test_acc (fractions in [0, 1]), n_train, n_test.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    keep_tr, keep_te = y_train >= 0, y_test >= 0
    f_train, y_train = np.asarray(f_train, dtype=np.float64)[keep_tr], y_train[keep_tr]
    f_test, y_test = np.asarray(f_test, dtype=np.float64)[keep_te], y_test[keep_te]
    if len(f_train) != len(y_train) or len(f_test) != len(y_test):
        raise ValueError("linear evaluation: features and labels differ in length")
    if len(np.unique(y_train)) < 2:
        raise ValueError("linear evaluation: the training labels hold fewer than two classes")
    for name, f in (("training", f_train), ("test", f_test)):
        if not np.isfinite(f).all():
            raise ValueError(f"linear evaluation: the {name} features contain NaN or inf")
    scaler = StandardScaler(with_mean=standardise, with_std=standardise).fit(f_train)
    clf = LogisticRegression(C=C, max_iter=max_iter)
    clf.fit(scaler.transform(f_train), y_train)
    return {
        "train_acc": float(clf.score(scaler.transform(f_train), y_train)),
        "test_acc": float(clf.score(scaler.transform(f_test), y_test)) if len(f_test) else float("nan"),
        "n_train": int(len(y_train)),
        "n_test": int(len(y_test)),
    }


def linear_eval(encoder: nn.Module, train_images, train_labels, test_images, test_labels, *,
                C: float = 1.0, max_iter: int = 1000, standardise: bool = False, device="cpu",
                batch_size: int = 512) -> dict:
    """Linear evaluation of a frozen encoder (thesis §5.1): features extracted once, in eval
    mode and without gradients, then :func:`linear_eval_features`."""
    f_tr = extract_features(encoder, train_images, batch_size=batch_size, device=device)
    f_te = extract_features(encoder, test_images, batch_size=batch_size, device=device)
    return linear_eval_features(f_tr, np.asarray(train_labels), f_te, np.asarray(test_labels),
                                C=C, max_iter=max_iter, standardise=standardise)


def _check_images(images) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"images must be a (N, C, H, W) tensor, got {type(images).__name__} "
                         f"{tuple(getattr(images, 'shape', ()))}")
    if images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 (0..255), got {images.dtype}")
