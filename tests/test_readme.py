"""Every Snakemake command of the README works as written: each is run as a dry run (``-n``)
in a scratch copy of the workflow, so a command that Snakemake cannot parse (a target read as
a second ``--configfile``, a target swallowed by ``--resources``) fails here first."""

from __future__ import annotations

import os
import re
import shlex

import pytest

from conftest import REPO

pytestmark = pytest.mark.pipeline

WORKFLOW = ("Snakefile", "rules", "scripts", "report", "config.yaml", "configs", "profiles", "envs")
SNAKEMAKE = ".venv/bin/snakemake"


def readme_commands(text: str) -> list[str]:
    """The README's Snakemake commands: lines of its bash blocks that run
    ``.venv/bin/snakemake`` and inline ``snakemake --...`` code spans, comments removed."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith(SNAKEMAKE + " ") or line == SNAKEMAKE:
                found.append(line)
    for span in re.findall(r"`snakemake( -[^`]*)`", text):
        found.append(SNAKEMAKE + span)
    return list(dict.fromkeys(found))


COMMANDS = readme_commands((REPO / "README.md").read_text())


def test_the_readme_commands_are_found():
    # the ones that failed as written (issue 12) are among them, in their fixed form
    assert len(COMMANDS) >= 15
    assert f"{SNAKEMAKE} --cores 8 --configfile configs/paper.yaml -- synthetic" in COMMANDS
    assert any("--resources gpu=1" in c for c in COMMANDS)
    assert any("figure_8.png" in c for c in COMMANDS)


def test_a_target_after_configfile_fails_the_dry_run(workflow_copy, capfd):
    """The form that broke (issue 12): Snakemake reads the target as a second config file."""
    (bad,) = readme_commands("```bash\n.venv/bin/snakemake --configfile configs/paper.yaml "
                             "synthetic   # x\n```\n")
    assert dry_run(bad) != 0
    assert "synthetic" in "".join(capfd.readouterr())


@pytest.fixture(scope="module")
def workflow_copy(tmp_path_factory):
    """A scratch directory that links the workflow's files (so .snakemake/ lands there)."""
    work = tmp_path_factory.mktemp("readme")
    for name in WORKFLOW:
        (work / name).symlink_to(REPO / name)
    old = os.getcwd()
    os.chdir(work)
    env = {k: os.environ.get(k) for k in ("MIPIPE_SLURM_ACCOUNT", "MIPIPE_SLURM_PARTITION")}
    os.environ.update(MIPIPE_SLURM_ACCOUNT="acct", MIPIPE_SLURM_PARTITION="part")
    yield work
    os.chdir(old)
    for k, v in env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def dry_run(command: str) -> int:
    """Snakemake's exit status for the command with -n, run in this process (one import of
    Snakemake and the workflow's modules for all commands: seconds each, not tens)."""
    from snakemake.cli import main

    argv = shlex.split(command)
    assert argv[0] == SNAKEMAKE
    args = argv[1:]
    if "--report" in args:
        # a report needs a finished run: check that Snakemake parses the command and builds
        # the DAG (a dry run of the same arguments without --report)
        i = args.index("--report")
        args = args[:i] + args[i + 2:]
    try:
        main(["-n", *args])
    except SystemExit as exc:
        return exc.code or 0
    return 0


def byo_placeholders(config_path):
    """Empty stand-ins for the files a bring_your_own config names (the default run's
    checkpoints, the example's images): its pre-job checks need them to exist, and a dry run
    reads none of them."""
    import yaml

    byo = yaml.safe_load(open(config_path))["bring_your_own"]
    specs = [byo["victim"], *byo["suspects"].values()]
    for path in [s[k] for s in specs for k in ("checkpoint", "state_dict") if k in s]:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "a").close()
    for part in ("members", "public"):
        path = byo[part]["path"]
        if path.endswith(".npz"):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, "a").close()
        else:
            os.makedirs(path, exist_ok=True)


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_dry_runs(command, workflow_copy, capfd):
    if "slurm" in command:
        pytest.importorskip("snakemake_executor_plugin_slurm")
    if "byo_example.yaml" in command:
        byo_placeholders("configs/byo_example.yaml")
    status = dry_run(command)
    out, err = capfd.readouterr()
    assert status == 0, f"{command}\n{out}\n{err}"
