"""Contrastive losses: NT-Xent (SimCLR) and the stealing InfoNCE (Dziedzic et al. 2022)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Normalised temperature-scaled cross entropy (Chen et al. 2020, Eq. 1), in nats.

    Parameters
    ----------
    z1, z2 : (B, d) tensors
        Paired outputs: row i of ``z1`` and row i of ``z2`` form the positive pair; the other
        2B - 2 rows of both are its negatives.
    temperature : float
        tau > 0; the cosine similarities are divided by it.

    Returns
    -------
    The mean over all 2B anchors of
    ``-log exp(sim(a, a+)/tau) / sum_{b != a} exp(sim(a, b)/tau)``.

    Raises
    ------
    ValueError
        Mismatched shapes, B < 2 or tau <= 0.
    """
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"nt_xent: z1 and z2 must both be (B, d), got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if z1.shape[0] < 2:
        raise ValueError("nt_xent: needs a batch of at least 2 pairs (one positive, negatives)")
    if not temperature > 0:
        raise ValueError(f"nt_xent: temperature must be > 0, got {temperature!r}")
    b = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(logits, targets)


def stealing_loss(stolen_out: torch.Tensor, victim_out: torch.Tensor,
                  temperature: float = 0.1) -> torch.Tensor:
    """InfoNCE of the stealing attack: the positive pair of query x is (stolen(x), victim(x));
    the other queries' outputs in the batch are negatives (Dziedzic et al. 2022, §3;
    thesis §5.2). The victim's outputs are constants (no gradient reaches the victim)."""
    return nt_xent(stolen_out, victim_out.detach(), temperature)
