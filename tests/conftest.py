"""Shared helpers: run Snakemake on the tiny test config in a scratch directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "configs" / "tiny.yaml"


def snakemake(workdir: Path, *args, configfile: Path = TINY, check: bool = True):
    """Run the repository's Snakefile with ``workdir`` as working directory."""
    cmd = [
        sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
        "--directory", str(workdir), "--configfile", str(configfile), "--cores", "2", *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A complete run of the tiny config (shared by the pipeline tests; do not modify)."""
    work = tmp_path_factory.mktemp("tiny")
    snakemake(work)
    return work


def edited_config(tmp_path: Path, mutate) -> Path:
    """A copy of the tiny config changed by ``mutate(config_dict)``, written to tmp_path."""
    cfg = yaml.safe_load(TINY.read_text())
    mutate(cfg)
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
