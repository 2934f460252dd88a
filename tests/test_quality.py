"""Quality gates of the workflow code: `snakemake --lint` and `snakefmt --check` pass."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from conftest import REPO


def run(*cmd):
    return subprocess.run(
        [sys.executable, "-m", *cmd], capture_output=True, text=True, cwd=REPO, timeout=600
    )


def test_snakemake_lint_is_clean():
    """Every rule has a log and a conda environment, no absolute paths, no other lints."""
    out = run("snakemake", "--lint")
    text = out.stdout + out.stderr
    assert out.returncode == 0, f"snakemake --lint failed ({out.returncode}):\n{text}"
    assert "Congratulations, your workflow is in a good condition!" in text, text


@pytest.mark.skipif(
    importlib.util.find_spec("snakefmt") is None,
    reason="snakefmt is not installed (pip install -e '.[test]' installs it)",
)
def test_snakefmt_check_passes():
    """Snakefile and rules/*.smk are formatted as `snakefmt .` leaves them."""
    out = run("snakefmt", "--check", ".")
    assert out.returncode == 0, (
        "snakefmt --check . failed; run `.venv/bin/snakefmt .` to reformat:\n"
        + out.stdout
        + out.stderr
    )
