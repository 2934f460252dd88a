"""Logging set-up for pipeline scripts: everything goes to the rule's log file."""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from pathlib import Path


@contextlib.contextmanager
def log_to(path):
    """Send logging and stderr to ``path`` for the duration of a script; on an exception,
    write the traceback there too and re-raise (so Snakemake reports the failure)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1) as fh:
        handler = logging.StreamHandler(fh)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        old_err = sys.stderr
        sys.stderr = fh
        try:
            yield logging.getLogger("mipipe")
        except BaseException:
            fh.write(traceback.format_exc())
            raise
        finally:
            sys.stderr = old_err
            root.removeHandler(handler)
