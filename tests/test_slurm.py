"""The tiny config through profiles/slurm on a real SLURM cluster gives the local run's results.

CI starts a single-node cluster on localhost first (`bash .ci/slurm.sh install && bash
.ci/slurm.sh start`). Without a reachable cluster the test tries `.ci/slurm.sh start` itself
(and stops what it started), and skips if SLURM is not installed. With MIPIPE_REQUIRE_SLURM=1
(set by .ci/run) a missing cluster fails the test instead of skipping it.

Account and partition: $MIPIPE_SLURM_ACCOUNT / $MIPIPE_SLURM_PARTITION, as profiles/slurm
reads them; the defaults fit the .ci/slurm.sh cluster (no accounting, partition "debug").
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, TINY

pytestmark = pytest.mark.pipeline

PROFILE = REPO / "profiles" / "slurm"
SCRIPT = REPO / ".ci" / "slurm.sh"
TIMING_COLUMNS = ["seconds", "seconds_mean"]
# the rules that do the work; all of them must go through sbatch (only target rules such as
# `all`, which run nothing, are run by Snakemake itself)
WORK_RULES = {"sample", "estimate", "aggregate", "figure", "eps_table"}
RUN_TIMEOUT_S = 900


def _cluster_up() -> bool:
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    states = out.stdout.split()
    return out.returncode == 0 and any(s.rstrip("*~#") in ("idle", "mix", "alloc") for s in states)


def _unavailable(reason: str):
    if os.environ.get("MIPIPE_REQUIRE_SLURM") == "1":
        pytest.fail(f"MIPIPE_REQUIRE_SLURM=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def slurm_cluster():
    """A reachable SLURM cluster: the one already up, or one started with .ci/slurm.sh."""
    if _cluster_up():
        yield "running"
        return
    if shutil.which("slurmctld") is None or shutil.which("sbatch") is None:
        _unavailable("SLURM not installed: run `bash .ci/slurm.sh install` (Debian/Ubuntu, as root)")
    if os.geteuid() != 0:
        _unavailable("no SLURM cluster is up and .ci/slurm.sh start needs root")
    proc = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=180)
    if proc.returncode != 0 or not _cluster_up():
        _unavailable(f"could not start the local SLURM cluster (bash .ci/slurm.sh start):\n"
                     f"{proc.stdout}{proc.stderr}")
    yield "started"
    subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, text=True, timeout=120)


def snakemake_slurm(workdir: Path, *args):
    """conftest.snakemake, with a timeout: a status query that never answers must not hang CI."""
    cmd = [
        sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
        "--directory", str(workdir), "--configfile", str(TINY), "--cores", "2", *args,
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"snakemake did not finish in {RUN_TIMEOUT_S}s:\n{e.stdout}\n{e.stderr}")
    if proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def _parquets(root: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(root)): p
        for sub in ("estimates", "tables", "samples")
        for p in sorted((root / "results" / sub).rglob("*.parquet"))
    }


def test_tiny_config_through_slurm_profile_equals_local_run(
    slurm_cluster, tiny_run, tmp_path, monkeypatch, record_property
):
    monkeypatch.setenv("MIPIPE_SLURM_ACCOUNT", os.environ.get("MIPIPE_SLURM_ACCOUNT", "mipipe"))
    monkeypatch.setenv("MIPIPE_SLURM_PARTITION", os.environ.get("MIPIPE_SLURM_PARTITION", "debug"))
    t0 = time.perf_counter()
    proc = snakemake_slurm(
        tmp_path,
        "--workflow-profile", str(PROFILE),
        # the profile waits 20 s before the first status query; seconds matter for a test
        "--slurm-init-seconds-before-status-checks", "2",
    )
    wall = time.perf_counter() - t0
    record_property("slurm_wall_s", round(wall, 1))
    print(f"\n[test_slurm] tiny config through profiles/slurm: {wall:.1f} s wall "
          f"(cluster {slurm_cluster})")
    log = proc.stdout + proc.stderr

    # the profile was used, and the jobs went through sbatch
    assert f"workflow specific profile {PROFILE}" in log
    submitted = re.findall(r"submitted with SLURM jobid (\d+) \(log: ([^)]+)\)", log)
    assert submitted, log
    logdir = tmp_path / ".snakemake" / "slurm_logs"
    remote_rules = set(re.findall(r"^rule (\w+):", log, flags=re.M))
    local_rules = set(re.findall(r"^localrule (\w+):", log, flags=re.M))
    rules_with_slurm_logs = {p.name.removeprefix("rule_") for p in logdir.glob("rule_*")}
    assert WORK_RULES <= remote_rules == rules_with_slurm_logs, (remote_rules, rules_with_slurm_logs)
    assert not local_rules & (WORK_RULES | remote_rules), local_rules
    for jobid, path in submitted:
        assert Path(path).name == f"{jobid}.log" and Path(path).is_file(), path

    # same artifacts as the local run, timing columns aside
    local, slurm = _parquets(tiny_run), _parquets(tmp_path)
    assert sorted(slurm) == sorted(local) and local
    for rel, path in local.items():
        a = pd.read_parquet(path)
        b = pd.read_parquet(slurm[rel])
        drop = [c for c in TIMING_COLUMNS if c in a.columns]
        try:
            pd.testing.assert_frame_equal(a.drop(columns=drop), b.drop(columns=drop), obj=rel)
        except AssertionError as e:
            # failed grid points are rows with an error message (mipipe.experiments.run_grid)
            errors = {c: sorted(set(df["error"].astype(str)) - {""})
                      for c, df in (("local", a), ("SLURM", b)) if "error" in df.columns}
            raise AssertionError(f"{rel} differs: {e}\nerror messages: {errors}") from None
    assert len(submitted) == len(list(logdir.rglob("*.log")))


def test_gpu_resource_gets_a_gpu(slurm_cluster, tmp_path, monkeypatch):
    """`gpu: 1` in set-resources (how profiles/slurm gives GPU rules their GPU) -> sbatch --gpus=1;
    the .ci/slurm.sh node has one (fake) GPU, so SLURM grants it and the job runs."""
    monkeypatch.setenv("MIPIPE_SLURM_ACCOUNT", os.environ.get("MIPIPE_SLURM_ACCOUNT", "mipipe"))
    monkeypatch.setenv("MIPIPE_SLURM_PARTITION", os.environ.get("MIPIPE_SLURM_PARTITION", "debug"))
    target = "results/samples/gauss/seed1.parquet"
    proc = snakemake_slurm(
        tmp_path, "--workflow-profile", str(PROFILE), "--slurm-init-seconds-before-status-checks", "2",
        "--set-resources", "sample:gpu=1", "--verbose", "--", target,
    )
    log = proc.stdout + proc.stderr
    sbatch = [line for line in log.splitlines() if "sbatch call:" in line]
    assert len(sbatch) == 1 and " --gpus=1 " in sbatch[0], sbatch
    assert (tmp_path / target).is_file()
    (jobid,) = re.findall(r"submitted with SLURM jobid (\d+)", log)
    job = subprocess.run(["scontrol", "show", "job", jobid], capture_output=True, text=True).stdout
    assert "gres:gpu:1" in job or "gres/gpu=1" in job, job
