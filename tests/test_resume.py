"""Interrupt and resume: kill the pipeline mid-run, rerun the same command, and get exactly
the artifacts of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, TINY, snakemake
from mipipe.io import read_parquet
from test_pipeline import assert_same_artifacts

pytestmark = pytest.mark.pipeline


def job_pids(workdir: Path):
    """PIDs of the pipeline's job processes (the rule scripts) running in workdir."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if cwd == str(workdir) and ".snakemake/scripts/" in cmd:
            pids.append(int(proc.name))
    return pids


def test_killed_run_resumes_to_the_same_artifacts(tiny_run, tmp_path):
    if not Path("/proc/self/cwd").exists():
        pytest.skip("needs /proc to find the job processes")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory",
           str(tmp_path), "--configfile", str(TINY), "--cores", "2"]
    run = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           start_new_session=True)
    try:
        # wait until some estimates are done and a job is running, then SIGKILL that job
        deadline = time.time() + 240
        killed_job = False
        while time.time() < deadline and run.poll() is None:
            done = list((tmp_path / "results" / "estimates").rglob("*.parquet"))
            pids = job_pids(tmp_path)
            if len(done) >= 2 and pids:
                os.kill(pids[0], signal.SIGKILL)
                killed_job = True
                break
            time.sleep(0.2)
        assert killed_job, "the run ended before a job could be killed"
        time.sleep(1.0)
        # then stop Snakemake itself (and its remaining jobs) with SIGTERM
        os.killpg(run.pid, signal.SIGTERM)
        run.wait(timeout=120)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    assert run.returncode != 0
    # nothing that exists after the interruption is corrupt
    for path in (tmp_path / "results").rglob("*.parquet"):
        if not path.name.startswith("."):
            read_parquet(path)
    assert not (tmp_path / "results" / "checks" / "synthetic.ok").exists()

    # the same command again completes the run
    snakemake(tmp_path)
    assert_same_artifacts(tiny_run, tmp_path)
    leftovers = [p for p in (tmp_path / "results").rglob(".*") if p.is_file()]
    assert leftovers == []


def test_a_corrupt_cached_sample_fails_with_its_path_in_the_error(tiny_run, tmp_path):
    """A truncated Parquet artifact (disk full, copied half-way) is reported by name."""
    import shutil

    work = tmp_path / "copy"
    shutil.copytree(tiny_run, work, ignore=shutil.ignore_patterns(".snakemake"))
    sample = work / "results" / "samples" / "gauss" / "seed1.parquet"
    sample.write_bytes(sample.read_bytes()[:100])
    out = snakemake(work, "--forcerun", "estimate", "--",
                    "results/estimates/fig_n/ksg1/seed1.parquet", check=False)
    assert out.returncode != 0
    log = (work / "results" / "logs" / "estimate" / "fig_n" / "ksg1" / "seed1.log").read_text()
    assert "results/samples/gauss/seed1.parquet: not a readable Parquet file" in log
    assert "Delete it and rerun" in log
    assert not (work / "results" / "estimates" / "fig_n" / "ksg1" / "seed1.parquet").exists()
