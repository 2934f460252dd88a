"""The dataset-inference stages behind rules/inference.smk, importable without Snakemake.

Each function reads cached inputs, runs one unit (a training, a linear evaluation, an
embedding extraction, the MI of one encoder pair) and writes its artifact atomically.
Image sets are cached once per data source by :func:`prepare_source` as a ``torch.save`` of
plain tensors (read back with ``weights_only=True``).
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import pandas as pd
import torch

from ..io import atomic_path, write_parquet
from .checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from .encoders import build_encoder, build_head
from .training import (VICTIM_HEAD_VARIANTS, black_box, extract_features,
                       linear_eval_features, resolve_device, seed_everything, steal,
                       train_simclr)

log = logging.getLogger("mipipe.inference")


# ------------------------------------------------------------------------------- names

# the {tau} wildcard: every string repr() gives for a positive finite float (0.1, 1e-05,
# 1.5e+20), so the wildcard matches each name that victim_name writes
TAU_PATTERN = r"[0-9]+(?:\.[0-9]+)?(?:e[-+][0-9]+)?"


def victim_name(temperature) -> str:
    """Encoder name of the victim trained at ``temperature``: ``victim_tau`` + repr(float),
    e.g. ``victim_tau0.1``, ``victim_tau0.1234567``, ``victim_tau1e-05``. repr is the
    shortest string that reads back as the same float, so two different temperatures never
    share a name and ``float(name[10:])`` is the temperature exactly."""
    return f"victim_tau{float(temperature)!r}"


# ------------------------------------------------------------------------------- data

def source_name(spec: dict) -> str:
    """Cache name of a data spec {dataset, split, size?}: e.g. ``cifar10_train``,
    ``stl10_unlabeled_32px`` (rows slices are applied when the cache is read)."""
    name = f"{spec['dataset']}_{spec['split']}"
    return f"{name}_{spec['size']}px" if spec.get("size") else name


def prepare_source(spec: dict, data: dict, out_path) -> dict:
    """Load one data set split through :func:`mipipe.inference.data.load_images` and cache it.

    Parameters
    ----------
    spec : {dataset, split, size?}; size resizes (antialiased) to size x size pixels.
    data : {root, download, seed, train_fraction} (config inference.data).
    """
    from torchvision.transforms import v2

    from .data import load_images

    images = load_images(spec["dataset"], spec["split"], data.get("root", "data"),
                         download=bool(data.get("download", False)),
                         seed=int(data.get("seed", 0)),
                         train_fraction=float(data.get("train_fraction", 0.8)))
    x = images.images
    if spec.get("size") and tuple(x.shape[-2:]) != (spec["size"], spec["size"]):
        size = [spec["size"], spec["size"]]  # in chunks: STL10 unlabeled is 2.8 GB as uint8
        x = torch.cat([v2.functional.resize(x[i:i + 4096], size, antialias=True)
                       for i in range(0, len(x), 4096)])
    payload = {"images": x.contiguous(), "labels": images.labels.to(torch.int64),
               "classes": list(images.classes), "name": images.name}
    with atomic_path(out_path) as tmp:
        torch.save(payload, tmp)
    return {"n": len(x), "shape": list(x.shape[1:]), "name": images.name}


def load_source(path, rows=None):
    """(images uint8 (N, C, H, W), labels int64 (N,)) of a cached source, rows [start, stop)
    if given (the order of the cache is kept).

    Raises ValueError when the rows fall outside the cached set, or when the file is not a
    readable cache (truncated or corrupt: delete it and rerun the job that writes it).
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise ValueError(f"{path}: the data cache is corrupt or truncated and cannot be read "
                         f"({type(exc).__name__}: {exc}); delete it and rerun the job that "
                         "writes it") from exc
    if not isinstance(payload, dict) or not {"images", "labels"} <= set(payload):
        raise ValueError(f"{path}: not a mipipe data cache (no 'images' and 'labels')")
    x, y = payload["images"], payload["labels"]
    if rows is not None:
        start, stop = int(rows[0]), int(rows[1])
        if not 0 <= start < stop <= len(x):
            raise ValueError(f"{path}: rows [{start}, {stop}) outside the {len(x)} cached images")
        x, y = x[start:stop], y[start:stop]
    return x, y


def _first(x, y, n):
    if n is not None:
        if n > len(x):
            raise ValueError(f"asked for the first {n} images of a set of {len(x)}")
        x, y = x[:n], y[:n]
    return x, y


# --------------------------------------------------------------------------- training

def _setup(threads, seed, device):
    torch.set_num_threads(max(int(threads), 1))
    seed_everything(int(seed))
    dev = resolve_device(device)
    log.info("device %s, %d thread(s), seed %d", dev, torch.get_num_threads(), seed)
    return dev


def train_simclr_stage(data_path, out_path, *, rows, encoder_spec, head_spec, recipe,
                       temperature, seed, device="auto", threads=1, role="victim") -> dict:
    """Train a SimCLR encoder (victim or independent) and save its checkpoint.

    recipe : {epochs, batch_size, lr, weight_decay, augmentation} (config inference.simclr).
    """
    from .augment import simclr_augmentation  # torchvision: imported by training jobs only

    dev = _setup(threads, seed, device)
    x, _ = load_source(data_path, rows)
    encoder = build_encoder(encoder_spec)
    head = build_head(encoder.out_dim, head_spec)
    aug = simclr_augmentation(recipe.get("augmentation"), x.shape[-1], x.shape[1])
    t0 = time.perf_counter()
    history = train_simclr(encoder, head, x, augmentation=aug, temperature=temperature,
                           lr=recipe["lr"], weight_decay=recipe["weight_decay"],
                           epochs=recipe["epochs"], batch_size=recipe["batch_size"],
                           seed=seed, device=dev, workers=max(int(threads) - 1, 0),
                           desc=f"{role} tau={temperature:g}")
    metrics = {"role": role, "temperature": float(temperature), "n_train": len(x),
               "final_loss": history[-1]["loss"] if history else math.nan,
               "loss": [h["loss"] for h in history], "device": str(dev)}
    seconds = time.perf_counter() - t0  # for the log only: time is in the benchmark files
    save_checkpoint(out_path, encoder, encoder_spec, head=head, head_spec=head_spec,
                    config={"recipe": recipe, "seed": seed, "rows": rows}, metrics=metrics)
    return {**metrics, "seconds": seconds}


def steal_stage(victim_path, queries_path, out_path, *, rows, n_queries, encoder_spec,
                head_spec, variant, recipe, seed, device="auto", threads=1) -> dict:
    """Steal the victim checkpoint through the black box and save the stolen encoder.

    The victim is loaded strictly and wrapped by :func:`black_box`; only that function
    reaches :func:`steal`. For head variants ``victim`` and ``both`` it answers with the
    victim's own projection head from the checkpoint (CheckpointError when there is none).
    recipe : {temperature, epochs, batch_size, lr, weight_decay, shuffle}.
    """
    dev = _setup(threads, seed, device)
    victim, victim_head, _ = load_checkpoint(victim_path, dev)
    if variant in VICTIM_HEAD_VARIANTS and victim_head is None:
        raise CheckpointError(f"{victim_path}: head variant {variant!r} needs the victim's own "
                              "projection head, and this checkpoint holds none")
    # victim / both: the API answers with the victim's own trained head (the original code)
    query = black_box(victim, dev,
                      head=victim_head if variant in VICTIM_HEAD_VARIANTS else None)
    del victim, victim_head
    x, _ = _first(*load_source(queries_path, rows), n_queries)
    stolen = build_encoder(encoder_spec)
    t0 = time.perf_counter()
    history, s_head, _ = steal(query, stolen, x, variant=variant, head_spec=head_spec,
                               temperature=recipe["temperature"], lr=recipe["lr"],
                               weight_decay=recipe["weight_decay"], epochs=recipe["epochs"],
                               batch_size=recipe["batch_size"],
                               shuffle=recipe.get("shuffle", True), seed=seed, device=dev,
                               desc=f"steal head={variant}")
    metrics = {"role": "stolen", "head": variant, "n_queries": len(x),
               "final_loss": history[-1]["loss"] if history else math.nan,
               "loss": [h["loss"] for h in history], "device": str(dev)}
    seconds = time.perf_counter() - t0  # for the log only: time is in the benchmark files
    # the stolen encoder is g_s; its training heads are discarded like the victim's
    save_checkpoint(out_path, stolen, encoder_spec, config={"recipe": recipe, "seed": seed},
                    metrics=metrics)
    return {**metrics, "seconds": seconds}


def random_stage(out_path, *, encoder_spec, seed, threads=1) -> dict:
    """An untrained encoder with seeded initialisation (the I_min baseline)."""
    _setup(threads, seed, "cpu")
    encoder = build_encoder(encoder_spec)
    metrics = {"role": "random", "seed": int(seed), "final_loss": math.nan}
    save_checkpoint(out_path, encoder, encoder_spec, config={"seed": seed}, metrics=metrics)
    return metrics


def copy_stage(victim_path, out_path) -> dict:
    """A copy of the victim: loaded strictly and saved again (its MI score must be 1)."""
    encoder, _, payload = load_checkpoint(victim_path)
    metrics = {"role": "copy", "final_loss": math.nan}
    save_checkpoint(out_path, encoder, payload["encoder_spec"],
                    config={"copy_of": str(victim_path)}, metrics=metrics)
    return metrics


# ------------------------------------------------------------------ evaluation, embeddings

def linear_eval_stage(checkpoint, eval_sets: dict, out_path, *, encoder_name, C=1.0,
                      max_iter=1000, standardise=False, device="auto", threads=1) -> pd.DataFrame:
    """Linear evaluation of one checkpoint on each named evaluation set.

    eval_sets : {name: {"train": (path, rows), "test": (path, rows)}}; features are
    extracted once per distinct image set. Writes one row per set: encoder, role, eval_set,
    train_acc, test_acc, n_train, n_test, final_loss (of the encoder's training).
    """
    dev = _setup(threads, 0, device)
    encoder, _, payload = load_checkpoint(checkpoint, dev)
    cache = {}

    def features(path, rows):
        key = (str(path), tuple(rows) if rows else None)
        if key not in cache:
            x, y = load_source(path, rows)
            cache[key] = (extract_features(encoder, x, device=dev), y.numpy())
        return cache[key]

    records = []
    for name, sets in eval_sets.items():
        f_tr, y_tr = features(*sets["train"])
        f_te, y_te = features(*sets["test"])
        res = linear_eval_features(f_tr, y_tr, f_te, y_te, C=C, max_iter=max_iter,
                                   standardise=standardise)
        metrics = payload["metrics"]
        records.append({"encoder": encoder_name, "role": metrics.get("role", ""),
                        "eval_set": name, **res,
                        "temperature": float(metrics.get("temperature", math.nan)),
                        "head": str(metrics.get("head", "")),
                        "final_loss": float(metrics.get("final_loss", math.nan))})
        log.info("%s on %s: train %.4f test %.4f", encoder_name, name, res["train_acc"],
                 res["test_acc"])
    df = pd.DataFrame(records)
    write_parquet(df, out_path, metadata={"metrics": {k: v for k, v in payload["metrics"].items()
                                                      if k != "loss"}})
    return df


def embed_stage(checkpoint, data_path, out_path, *, rows, n, device="auto",
                threads=1) -> pd.DataFrame:
    """Embeddings of the first ``n`` images (unshuffled) -> Parquet: ``image`` (row id in the
    cached set) and float32 columns z0..z{d-1}."""
    dev = _setup(threads, 0, device)
    encoder, _, _ = load_checkpoint(checkpoint, dev)
    x, _ = _first(*load_source(data_path, rows), n)
    z = extract_features(encoder, x, device=dev)
    start = int(rows[0]) if rows else 0
    df = pd.DataFrame(z, columns=[f"z{j}" for j in range(z.shape[1])])
    df.insert(0, "image", np.arange(start, start + len(z), dtype=np.int64))
    write_parquet(df, out_path)
    return df


# --------------------------------------------------------------------------- detection

def represent_stage(checkpoint, sets: dict, out_path, *, device="auto",
                    threads=1) -> pd.DataFrame:
    """One encoder's representations of each named image set -> Parquet with columns
    ``part`` (the set's name, e.g. members / public), ``image`` (row id in the cached set)
    and float32 z0..z{d-1}.

    sets : {name: (cache path, rows or None)}.
    """
    dev = _setup(threads, 0, device)
    encoder, _, _ = load_checkpoint(checkpoint, dev)
    frames = []
    for part, (path, rows) in sets.items():
        x, _ = load_source(path, rows)
        z = extract_features(encoder, x, device=dev)
        df = pd.DataFrame(z, columns=[f"z{j}" for j in range(z.shape[1])])
        start = int(rows[0]) if rows else 0
        df.insert(0, "image", np.arange(start, start + len(z), dtype=np.int64))
        df.insert(0, "part", part)
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    write_parquet(df, out_path)
    return df


def detection_stage(paths: dict, encoders: dict, target: str, settings: dict, *, tables: dict,
                    figure) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Verdicts and error rates of the calibrated detection (:mod:`mipipe.inference.calibration`).

    paths : {encoder: representations Parquet of :func:`represent_stage`}; encoders :
    {encoder: {role, head, seed}}; settings : {alpha, control_alpha, detectors, gmm, mi_gap,
    thresholds}
    (None values take the defaults); tables : {"di_verdicts" | "di_detection": (parquet,
    csv, md)}; figure : (png, pdf).
    """
    from ..io import read_parquet, save_figure, write_table
    from .calibration import detection_summary, detection_verdicts, plot_detection

    reps = {}
    for name, path in paths.items():
        df = read_parquet(path)
        cols = [c for c in df.columns if c.startswith("z")]
        reps[name] = {**encoders[name],
                      **{part: df.loc[df["part"] == part, cols].to_numpy(np.float64)
                         for part in ("members", "public")}}
    kw = {k: v for k, v in settings.items() if v is not None}
    verdicts = detection_verdicts(reps, target, **kw)
    summary = detection_summary(verdicts, target)
    for name, df in (("di_verdicts", verdicts), ("di_detection", summary)):
        write_table(df, *tables[name])
        log.info("%s:\n%s", name, df.to_string(index=False))
    save_figure(plot_detection(verdicts, summary), *figure)
    return verdicts, summary
