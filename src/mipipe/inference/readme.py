"""The README's dataset-inference numbers, written from a run's tables (issue 11, item 8).

The README quotes the default run's detection results between two marker lines. This module
renders that block from ``results/tables/di_detection.parquet`` and ``di_verdicts.parquet``,
so the numbers there are the run's and nobody types them in::

    python -m mipipe.inference.readme            # rewrite the block from results/tables
    python -m mipipe.inference.readme --check    # exit 1 when the README differs from results

torch-free: it reads Parquet only.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import read_parquet, write_text

__all__ = ["BEGIN", "END", "detection_block", "update_readme"]

BEGIN = "<!-- begin di_detection: written by `python -m mipipe.inference.readme`; do not edit -->"
END = "<!-- end di_detection -->"

SUMMARY_COLUMNS = ["detector", "kind", "threshold", "alternative", "n_stolen", "n_independent",
                   "n_random", "n_victim", "auc", "tpr", "fpr", "fpr_random", "victims_flagged",
                   "control_p_value", "group_p_value", "stolen_mean", "stolen_sd",
                   "independent_mean", "independent_sd"]
_ROLE_ORDER = {"victim": 0, "stolen": 1, "independent": 2, "random": 3, "suspect": 4}


def _fmt(v) -> str:
    if v is None or (isinstance(v, (float, np.floating)) and math.isnan(v)):
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if v == 0:
            return "0"
        if abs(v) < 1e-3:
            return f"{v:.2e}"
        return f"{v:.3g}"
    return str(v)


def _table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return out


def detection_block(summary: pd.DataFrame, verdicts: pd.DataFrame) -> str:
    """The Markdown block the README quotes: the error rates per detector, then one row per
    encoder with each detector's statistic (and p-value for the tests).

    Parameters
    ----------
    summary : the ``di_detection`` table (:func:`mipipe.inference.calibration.detection_summary`).
    verdicts : the ``di_verdicts`` table (:func:`~mipipe.inference.calibration.detection_verdicts`).

    Returns the block without its marker lines. Numbers have 3 significant digits; a failed
    detector row shows ``failed``.

    Raises ValueError naming the missing columns when a table is not one of these.
    """
    for name, df, need in (("di_detection", summary, SUMMARY_COLUMNS),
                           ("di_verdicts", verdicts, ["encoder", "role", "head", "seed",
                                                      "detector", "kind", "statistic",
                                                      "p_value", "verdict", "status"])):
        missing = [c for c in need if c not in df.columns]
        if missing:
            raise ValueError(f"{name}: missing column(s) {missing}")
    lines = ["Error rates per detector (`results/tables/di_detection.md`; `auc`: stolen "
             "against independent; `tpr`/`fpr`: share of stolen/independent encoders "
             "flagged; `group_p_value`: Welch test of the stolen against the independent "
             "statistics):", ""]
    lines += _table(SUMMARY_COLUMNS, summary[SUMMARY_COLUMNS].values.tolist())
    detectors = list(dict.fromkeys(verdicts["detector"]))
    tests = set(verdicts.loc[verdicts["kind"] == "test", "detector"])
    header = ["encoder", "role", "head", "seed"]
    for det in detectors:
        header += [f"{det}", f"{det} p"] if det in tests else [det]
    enc = (verdicts[["encoder", "role", "head", "seed"]].drop_duplicates("encoder")
           .assign(_o=lambda d: d["role"].map(_ROLE_ORDER).fillna(9))
           .sort_values(["_o", "head", "seed", "encoder"], kind="stable"))
    rows = []
    for r in enc.itertuples(index=False):
        row = [r.encoder, r.role, r.head, int(r.seed)]
        mine = verdicts[verdicts["encoder"] == r.encoder].set_index("detector")
        for det in detectors:
            if det not in mine.index:
                row += [None, None] if det in tests else [None]
                continue
            v = mine.loc[det]
            if v["status"] != "ok":
                row += ["failed", ""] if det in tests else ["failed"]
                continue
            stat = float(v["statistic"])
            mark = " *" if v["verdict"] in ("stolen", "similar") else ""
            row += ([_fmt(stat), _fmt(float(v["p_value"])) + mark] if det in tests
                    else [_fmt(stat) + mark])
        rows.append(row)
    lines += ["", "Every encoder (`results/tables/di_verdicts.md`; `*`: flagged, i.e. p < α "
              "for the tests or past the stated threshold for the similarity measures):", ""]
    lines += _table(header, rows)
    return "\n".join(lines)


def update_readme(readme, tables_dir, *, check: bool = False) -> bool:
    """Rewrite the block between :data:`BEGIN` and :data:`END` in ``readme`` from
    ``tables_dir/di_detection.parquet`` and ``tables_dir/di_verdicts.parquet``.

    Returns True when the README's block differs from the tables (and, unless ``check``, was
    rewritten, atomically). Raises FileNotFoundError for a missing table and ValueError
    when the README lacks the markers or holds them more than once.
    """
    readme, tables_dir = Path(readme), Path(tables_dir)
    text = readme.read_text()
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise ValueError(f"{readme}: needs exactly one {BEGIN!r} line followed by one {END!r} "
                         "line")
    block = detection_block(read_parquet(tables_dir / "di_detection.parquet"),
                            read_parquet(tables_dir / "di_verdicts.parquet"))
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{BEGIN}\n{block}\n{END}{tail}"
    changed = new != text
    if changed and not check:
        write_text(new, readme)
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mipipe.inference.readme",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--readme", default="README.md")
    parser.add_argument("--tables", default="results/tables",
                        help="folder holding di_detection.parquet and di_verdicts.parquet")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 when the README differs from the tables")
    args = parser.parse_args(argv)
    try:
        changed = update_readme(args.readme, args.tables, check=args.check)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check and changed:
        print(f"{args.readme}: the dataset-inference block differs from {args.tables}",
              file=sys.stderr)
        return 1
    print(f"{args.readme}: {'rewritten' if changed else 'already matches'} {args.tables}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
