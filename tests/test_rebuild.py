"""Selective rebuilds: editing one parameter schedules exactly the jobs it affects (dry runs)."""

from __future__ import annotations

import re

import pytest

from conftest import REPO, TINY, edited_config, snakemake

pytestmark = pytest.mark.pipeline


def scheduled_outputs(workdir, configfile=TINY, *args):
    """The output files a dry run would (re)build."""
    out = snakemake(workdir, "-n", *args, configfile=configfile)
    text = out.stdout + out.stderr
    if "Nothing to be done" in text:
        return set()
    files = set()
    for line in text.splitlines():
        m = re.match(r"\s+output: (.*)$", line)
        if m:
            files.update(f.strip() for f in m.group(1).split(","))
    return files


# every estimate feeds the failure table, and every output the final check
FAILURE_CHECK = [f"results/tables/failures.{ext}" for ext in ("parquet", "csv", "md")] + [
    "results/checks/synthetic.ok"
]


def test_no_edit_schedules_nothing(tiny_run):
    assert scheduled_outputs(tiny_run) == set()


def test_editing_one_estimators_grid_reruns_only_its_jobs(tiny_run, tmp_path):
    cfg = edited_config(tmp_path, lambda c: c["experiments"]["fig_n"]["estimators"]["ksg2"].update(p=[1, 2]))
    assert scheduled_outputs(tiny_run, cfg) == {
        "results/estimates/fig_n/ksg2/seed1.parquet",
        "results/estimates/fig_n/ksg2/seed2.parquet",
        "results/tables/fig_n.parquet",
        "results/tables/fig_n.csv",
        "results/tables/fig_n.md",
        "results/figures/fig_n.png",
        "results/figures/fig_n.pdf",
        *FAILURE_CHECK,
    }


def test_editing_eps_list_reruns_the_eps_table_too(tiny_run, tmp_path):
    cfg = edited_config(tmp_path, lambda c: c["experiments"]["eps_lin"].update(eps=[1e-12, 1e-10, 1e-8]))
    assert scheduled_outputs(tiny_run, cfg) == {
        "results/estimates/eps_lin/ksg2/seed1.parquet",
        "results/estimates/eps_lin/ksg2/seed2.parquet",
        "results/tables/eps_lin.parquet",
        "results/tables/eps_lin.csv",
        "results/tables/eps_lin.md",
        "results/figures/eps_lin.png",
        "results/figures/eps_lin.pdf",
        "results/tables/eps_sensitivity.parquet",
        "results/tables/eps_sensitivity.csv",
        "results/tables/eps_sensitivity.md",
        *FAILURE_CHECK,
    }


def test_editing_a_title_redraws_only_that_figure(tiny_run, tmp_path):
    cfg = edited_config(tmp_path, lambda c: c["experiments"]["fig_k"].update(title="new title"))
    assert scheduled_outputs(tiny_run, cfg) == {
        "results/figures/fig_k.png",
        "results/figures/fig_k.pdf",
        "results/checks/synthetic.ok",
    }


def test_editing_a_dataset_reruns_everything_downstream_of_it(tiny_run, tmp_path):
    cfg = edited_config(tmp_path, lambda c: c["datasets"]["gauss"].update(beta=2.0))
    outs = scheduled_outputs(tiny_run, cfg)
    assert "results/samples/gauss/seed1.parquet" in outs
    assert "results/figures/fig_n.png" in outs
    assert not any("lin" in f or "fig_k" in f for f in outs)


def test_forcerun_one_target(tiny_run):
    outs = scheduled_outputs(tiny_run, TINY, "--forcerun", "figure", "--", "results/figures/fig_k.png")
    assert outs == {"results/figures/fig_k.png", "results/figures/fig_k.pdf"}


def test_a_configfile_replaces_the_default_config(tmp_path):
    """`--configfile` replaces config.yaml instead of being merged into it."""
    (tmp_path / "config.yaml").write_text((REPO / "config.yaml").read_text())
    outs = scheduled_outputs(tmp_path, TINY)
    assert "results/figures/fig_n.png" in outs
    assert not any("figure_2" in f or "gaussian_d10" in f for f in outs)
