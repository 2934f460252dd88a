"""Encoder checkpoints: written atomically, loaded strictly with ``weights_only=True``.

A checkpoint is a ``torch.save`` of a plain dict (only tensors, numbers, strings, lists and
dicts, so the safe unpickler accepts it)::

    {"format": "mipipe-encoder", "version": 1,
     "encoder_spec": {...}, "encoder": state_dict,
     "head_spec": {...} | None, "head": state_dict | None,
     "config": {...}, "metrics": {...}}

Loading rebuilds the modules from the specs and calls ``load_state_dict(strict=True)`` after
comparing the key sets itself, so a renamed key (e.g. the ``module.`` prefix that
``nn.DataParallel`` adds) is an error that names the missing and unexpected keys. The
original dataset-inference code loaded such checkpoints with ``strict=False``; nothing
matched and it silently stole from a randomly initialised network (shared/README.md §4).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..io import atomic_path
from .encoders import build_encoder, build_head

FORMAT = "mipipe-encoder"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that does not match the model it describes, or is not a mipipe checkpoint."""


def save_checkpoint(path, encoder, encoder_spec: dict, *, head=None, head_spec=None,
                    config: dict | None = None, metrics: dict | None = None) -> None:
    """Write an encoder (and optionally its projection head) to ``path`` atomically.

    ``config`` and ``metrics`` must hold only plain values (numbers, strings, lists, dicts).
    Tensors are moved to the CPU, so a checkpoint written on a GPU loads anywhere.
    """
    payload = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "encoder_spec": dict(encoder_spec),
        "encoder": {k: v.detach().cpu() for k, v in encoder.state_dict().items()},
        "head_spec": dict(head_spec) if head is not None and head_spec is not None else None,
        "head": ({k: v.detach().cpu() for k, v in head.state_dict().items()}
                 if head is not None else None),
        "config": config or {},
        "metrics": metrics or {},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_state_strict(module: torch.nn.Module, state: dict, what: str) -> None:
    """``module.load_state_dict(state, strict=True)`` with an error naming every missing and
    unexpected key (and the shapes of mismatched ones).

    Raises
    ------
    CheckpointError
        The key sets differ or a tensor has the wrong shape.
    """
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        hint = ""
        if any(k.startswith("module.") for k in unexpected):
            hint = " (keys carry a 'module.' prefix: saved from nn.DataParallel; strip it first)"
        raise CheckpointError(
            f"{what}: state dict does not match the model{hint}; "
            f"missing keys ({len(missing)}): {_short(missing)}; "
            f"unexpected keys ({len(unexpected)}): {_short(unexpected)}"
        )
    bad = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
           for k, v in expected.items() if tuple(state[k].shape) != tuple(v.shape)]
    if bad:
        raise CheckpointError(f"{what}: tensor shapes differ: {_short(bad)}")
    module.load_state_dict(state, strict=True)


def load_checkpoint(path, device="cpu"):
    """Load a checkpoint written by :func:`save_checkpoint`.

    Returns
    -------
    (encoder, head, payload)
        The encoder in eval mode on ``device``; the head or None; the raw dict (config,
        metrics, specs).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    CheckpointError
        Not a mipipe checkpoint, an unknown format version, or a key/shape mismatch.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a loadable checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a mipipe encoder checkpoint")
    if payload.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {payload.get('version')!r}, this mipipe reads "
            f"version {FORMAT_VERSION}"
        )
    encoder = build_encoder(payload["encoder_spec"])
    load_state_strict(encoder, payload["encoder"], f"{path} (encoder)")
    head = None
    if payload.get("head") is not None:
        head = build_head(encoder.out_dim, payload["head_spec"])
        load_state_strict(head, payload["head"], f"{path} (head)")
        head = head.to(device).eval()
    return encoder.to(device).eval(), head, payload


def _short(keys, limit: int = 8) -> str:
    keys = list(keys)
    text = ", ".join(map(str, keys[:limit]))
    return f"[{text}{', ...' if len(keys) > limit else ''}]"
