"""The README's dataset-inference block is written from a run's tables
(mipipe.inference.readme): rendering, rewriting in place, and --check (seconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mipipe.inference.calibration import detection_summary, detection_verdicts
from mipipe.inference.readme import BEGIN, END, detection_block, main, update_readme
from mipipe.io import write_parquet

ROOT = Path(__file__).resolve().parents[1]


def _tables(tmp_path):
    rng = np.random.default_rng(2)
    n, d = 80, 4
    xm, xp = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    reps = {"victim": {"role": "victim", "members": 0.3 * xm, "public": xp}}
    for s in range(2):
        reps[f"stolen_{s}"] = {"role": "stolen", "head": "none", "seed": s,
                               "members": 0.3 * xm + 0.05 * rng.standard_normal((n, d)),
                               "public": xp + 0.05 * rng.standard_normal((n, d))}
        u = rng.standard_normal((d, d))
        reps[f"independent_{s}"] = {"role": "independent", "seed": s, "members": xm @ u,
                                    "public": xp @ u}
        reps[f"random_{s}"] = {"role": "random", "seed": s,
                               "members": rng.standard_normal((n, d)),
                               "public": rng.standard_normal((n, d))}
    v = detection_verdicts(reps, "victim", gmm={"n_components": 2}, mi_gap={"n_subsets": 4})
    s = detection_summary(v, "victim")
    write_parquet(v, tmp_path / "di_verdicts.parquet")
    write_parquet(s, tmp_path / "di_detection.parquet")
    return v, s


def test_block_holds_every_detector_and_encoder_with_the_tables_values(tmp_path):
    v, s = _tables(tmp_path)
    block = detection_block(s, v)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in block.splitlines()
            if line.startswith("| ")}
    for det in s["detector"]:
        assert det in rows
    for enc in v["encoder"].unique():
        assert enc in rows
    # the victim's GMM p-value and the CKA AUC, as the tables hold them (3 digits)
    ctrl = v[(v.encoder == "victim") & (v.detector == "gmm")].iloc[0]
    cells = [c.strip() for c in rows["victim"].strip("| ").split(" | ")]
    assert cells[4] == f"{ctrl.statistic:.3g}"
    p = ctrl.p_value
    assert cells[5].rstrip(" *") == (f"{p:.2e}" if p < 1e-3 else f"{p:.3g}")
    assert cells[5].endswith("*") == (p < 0.05)
    auc = float(s.set_index("detector").loc["linear_cka", "auc"])
    cka = [c.strip() for c in rows["linear_cka"].strip("| ").split(" | ")]
    assert cka[8] == f"{auc:.3g}"


def test_update_rewrites_only_the_block_and_check_sees_drift(tmp_path):
    _tables(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{BEGIN}\n| stale | 0.98 |\n{END}\noutro\n")
    assert main(["--readme", str(readme), "--tables", str(tmp_path), "--check"]) == 1
    assert "stale" in readme.read_text()  # --check changes nothing
    assert update_readme(readme, tmp_path) is True
    text = readme.read_text()
    assert text.startswith("intro\n" + BEGIN) and text.endswith(END + "\noutro\n")
    assert "stale" not in text and "| gmm |" in text
    assert update_readme(readme, tmp_path, check=True) is False  # idempotent
    assert main(["--readme", str(readme), "--tables", str(tmp_path), "--check"]) == 0


def test_missing_markers_or_tables_are_named(tmp_path):
    _tables(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="README.md: needs exactly one"):
        update_readme(readme, tmp_path)
    readme.write_text(f"{BEGIN}\n{END}\n")
    with pytest.raises(FileNotFoundError):
        update_readme(readme, tmp_path / "nowhere")
    with pytest.raises(ValueError, match="di_detection: missing column"):
        detection_block(pd.DataFrame({"detector": ["gmm"]}), pd.DataFrame())


def test_the_readme_quotes_the_block_once():
    text = (ROOT / "README.md").read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    assert "| gmm | test |" in block and "| linear_cka | similarity |" in block
