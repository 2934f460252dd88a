"""Encoder checkpoints: written atomically, loaded strictly with ``weights_only=True``.

A checkpoint is a ``torch.save`` of a plain dict (only tensors, numbers, strings, lists and
dicts, so the safe unpickler accepts it)::

    {"format": "mipipe-encoder", "version": 1,
     "encoder_spec": {...}, "encoder": state_dict,
     "head_spec": {...} | None, "head": state_dict | None,
     "config": {...}, "metrics": {...}, "weights_sha256": "..."}

The archive is serialised in memory (so the zip's inner folder is always ``archive``, never
the random temporary name) and then written atomically: the same weights, config and
metrics give a byte-identical file. No wall-clock time goes into it (timings are in the
benchmark files). ``weights_sha256`` is a SHA-256 over every tensor's name, dtype, shape and
bytes; :func:`load_checkpoint` recomputes it, so a flipped byte in any tensor is an error
naming the file.

Loading rebuilds the modules from the specs and calls ``load_state_dict(strict=True)`` after
comparing the key sets itself, so a renamed key (e.g. the ``module.`` prefix that
``nn.DataParallel`` adds) is an error that names the missing and unexpected keys. The
original dataset-inference code loaded such checkpoints with ``strict=False``; nothing
matched and it silently stole from a randomly initialised network (shared/README.md §4).
"""

from __future__ import annotations

import hashlib
import io
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
    payload["weights_sha256"] = weights_digest(payload["encoder"], payload["head"])
    buf = io.BytesIO()
    torch.save(payload, buf)  # an in-memory buffer: the archive name is fixed ("archive")
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(buf.getvalue())


def weights_digest(encoder_state: dict, head_state: dict | None = None) -> str:
    """SHA-256 (hex) over the encoder's and the head's tensors: for each, in key order, the
    part name, key, dtype, shape and the raw bytes of the contiguous CPU tensor."""
    h = hashlib.sha256()
    for part, state in (("encoder", encoder_state), ("head", head_state or {})):
        for key in sorted(state):
            t = state[key].detach().cpu().contiguous()
            h.update(f"{part}/{key}/{t.dtype}/{tuple(t.shape)}\n".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


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
        Not a mipipe checkpoint, an unknown format version, a missing ``encoder_spec`` (or
        head weights without a ``head_spec``), a key/shape mismatch, or weights that do not
        match the stored ``weights_sha256``; each message starts with the file.
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
    if not isinstance(payload.get("encoder_spec"), dict):
        raise CheckpointError(f"{path}: the checkpoint has no encoder_spec (a dict of the "
                              "encoder's architecture), so the encoder cannot be rebuilt")
    if payload.get("head") is not None and not isinstance(payload.get("head_spec"), dict):
        raise CheckpointError(f"{path}: the checkpoint has head weights but head_spec is "
                              f"{payload.get('head_spec')!r}, so the head cannot be rebuilt")
    encoder = build_encoder(payload["encoder_spec"])
    load_state_strict(encoder, payload["encoder"], f"{path} (encoder)")
    head = None
    if payload.get("head") is not None:
        head = build_head(encoder.out_dim, payload["head_spec"])
        load_state_strict(head, payload["head"], f"{path} (head)")
        head = head.to(device).eval()
    # after the key checks, so a renamed key is reported as such
    stored = payload.get("weights_sha256")
    if stored is not None and stored != weights_digest(payload["encoder"], payload.get("head")):
        raise CheckpointError(f"{path}: the weights do not match the checksum stored in the "
                              "checkpoint (weights_sha256): the file is corrupt or was edited")
    return encoder.to(device).eval(), head, payload


def _short(keys, limit: int = 8) -> str:
    keys = list(keys)
    text = ", ".join(map(str, keys[:limit]))
    return f"[{text}{', ...' if len(keys) > limit else ''}]"
