"""Atomic, validated reading and writing of the pipeline's artifacts.

Every writer goes through :func:`atomic_path`: the data are written to a temporary file in
the destination's directory and renamed over the destination only once complete, so a job
killed mid-write never leaves a file that looks finished. Readers turn a corrupt or foreign
file into a ``ValueError`` that names the file and the problem.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

METADATA_KEY = b"mipipe"


@contextlib.contextmanager
def atomic_path(path, suffix: str | None = None):
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary file keeps the destination's suffix (matplotlib picks the format from it).
    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a writer killed before its rename (SIGKILL, power loss) leaves its temporary file
    # behind; it was never renamed, so nothing trusts it: clear it before writing anew
    for stale in path.parent.glob(f".{path.name}.*"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=suffix if suffix is not None else path.suffix,
        dir=path.parent,
    )
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp creates the file private (0600); give it the mode a plain open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_parquet(df: pd.DataFrame, path, metadata: dict | None = None) -> None:
    """Write ``df`` to Parquet atomically, with optional JSON metadata in the schema.

    Written without the pandas index and with a fixed writer configuration, so the same
    frame gives a byte-identical file.
    """
    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta.pop(b"pandas", None)
    if metadata is not None:
        meta[METADATA_KEY] = json.dumps(metadata, sort_keys=True, default=_json_default).encode()
    table = table.replace_schema_metadata(meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", write_statistics=False)


def read_parquet(path, columns=None) -> pd.DataFrame:
    """Read a Parquet artifact; a missing, truncated or foreign file raises ``ValueError``
    naming the file."""
    return _read_table(path, columns).to_pandas()


def read_metadata(path) -> dict:
    """The JSON metadata that :func:`write_parquet` stored in ``path`` ({} if none)."""
    try:
        schema = pq.read_schema(path)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise ValueError(f"{path}: not a readable Parquet file ({type(exc).__name__}: {exc})") from exc
    raw = (schema.metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}


def _read_table(path, columns=None) -> pa.Table:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return pq.read_table(path, columns=columns)
    except Exception as exc:
        size = path.stat().st_size
        raise ValueError(
            f"{path}: not a readable Parquet file ({size} bytes; truncated, corrupt or another "
            f"format): {type(exc).__name__}: {exc}. Delete it and rerun to rebuild it"
        ) from exc


def write_text(text: str, path) -> None:
    """Write a text artifact (CSV, Markdown) atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def write_table(df: pd.DataFrame, parquet_path, csv_path=None, markdown_path=None,
                metadata: dict | None = None, float_format: str = "%.6g") -> None:
    """Write a result table as Parquet, and optionally as CSV and a Markdown table."""
    write_parquet(df, parquet_path, metadata)
    if csv_path is not None:
        write_text(df.to_csv(index=False, float_format=float_format), csv_path)
    if markdown_path is not None:
        write_text(to_markdown(df, float_format) + "\n", markdown_path)


def to_markdown(df: pd.DataFrame, float_format: str = "%.4g") -> str:
    """A GitHub-flavoured Markdown table (no third-party dependency)."""

    def fmt(v):
        if isinstance(v, (float, np.floating)):
            if np.isnan(v):
                return ""
            return float_format % v
        return str(v)

    header = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    rows = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([header, sep, *rows])


def save_figure(fig, png_path, pdf_path=None, dpi: int = 150) -> None:
    """Save a matplotlib figure as PNG (and PDF) atomically, with reproducible metadata."""
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, dpi=dpi, metadata={"Software": None})
    if pdf_path is not None:
        with atomic_path(pdf_path) as tmp:
            fig.savefig(tmp, metadata={"Creator": None, "Producer": None, "CreationDate": None})


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_sample(x: np.ndarray, y: np.ndarray, true_mi, path, params: dict | None = None) -> None:
    """Store a synthetic sample: columns x0..x{dim_x-1}, y0..y{dim_y-1} (float64); the analytic
    MI (nats; of every prefix D, ``true_mi[D]``, for the thesis families, one value for a task
    sample, whose dim_x and dim_y may differ) and the generating parameters go in the metadata."""
    cols = {f"x{j}": x[:, j] for j in range(x.shape[1])}
    cols.update({f"y{j}": y[:, j] for j in range(y.shape[1])})
    meta = {"true_mi_nats": [float(v) for v in np.asarray(true_mi)], "params": params or {}}
    write_parquet(pd.DataFrame(cols), path, metadata=meta)


def path_list(value) -> list[str]:
    """A rule's named input as a list of paths (Snakemake gives a name holding one file as a
    plain string)."""
    return [str(value)] if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") else [str(v) for v in value]


def read_sample(path):
    """Inverse of :func:`write_sample`: returns ``(x, y, true_mi, params)``.

    Raises ``ValueError`` naming the file when it is not a sample written by mipipe.
    """
    df = read_parquet(path)
    meta = read_metadata(path)
    xcols = [c for c in df.columns if c.startswith("x")]
    ycols = [c for c in df.columns if c.startswith("y")]
    if "true_mi_nats" not in meta or not xcols or not ycols:
        raise ValueError(
            f"{path}: not a mipipe sample (expects columns x0.., y0.. and true_mi_nats metadata)"
        )
    x = np.ascontiguousarray(df[xcols].to_numpy(dtype=np.float64))
    y = np.ascontiguousarray(df[ycols].to_numpy(dtype=np.float64))
    return x, y, np.asarray(meta["true_mi_nats"], dtype=np.float64), meta.get("params", {})
