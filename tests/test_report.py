"""`snakemake --report` on a completed tiny run: the HTML report builds offline, and in a
headless Chromium its figures render (decoded PNG) with their captions and labels."""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

from mipipe.distributions import linear_mi

from conftest import TINY, snakemake

pytestmark = pytest.mark.pipeline

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def find_chromium():
    """$CHROMIUM if set, else the first Chromium/Chrome on PATH (Debian: apt-get install chromium)."""
    if os.environ.get("CHROMIUM"):
        return shutil.which(os.environ["CHROMIUM"])
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="session")  # session scope: skips before the tiny run is built
def chromium():
    path = find_chromium()
    if path is None:
        pytest.skip(
            "Chromium not found, so the report is not rendered in a browser: install it "
            "(Debian/Ubuntu: apt-get install -y chromium) or set $CHROMIUM to its path"
        )
    return path


@pytest.fixture(scope="module")
def report(tiny_run, tmp_path_factory):
    """The report of the shared tiny run, written outside its working directory."""
    out = tmp_path_factory.mktemp("report") / "report.html"
    proc = snakemake(tiny_run, "--report", str(out))
    log = proc.stdout + proc.stderr
    # docutils reports malformed captions (RST after Jinja) on stderr but does not fail
    assert "(ERROR/" not in log and "(SEVERE/" not in log and "(WARNING/" not in log, log
    return out


def embedded_json(text, script_id):
    m = re.search(rf'<script id="{script_id}">\s*(.*?)\s*</script>', text, re.S)
    assert m, f"no <script id={script_id!r}> in the report"
    body = m.group(1)
    # the reporter assigns the data to a global: `var results = {...};`
    body = body[body.index("{") : body.rindex("}") + 1]
    return json.loads(body)


def figure_names():
    return list(yaml.safe_load(TINY.read_text())["experiments"])


def test_report_contains_every_figure_and_table_with_caption(report):
    text = report.read_text()
    results = embedded_json(text, "results")
    names = figure_names()
    expected = {f"results/figures/{n}.{ext}" for n in names for ext in ("png", "pdf")}
    expected |= {f"results/tables/{n}.csv" for n in names} | {"results/tables/eps_sensitivity.csv"}
    experiments = yaml.safe_load(TINY.read_text())["experiments"]
    neural = [n for n, e in experiments.items() if set(e["estimators"]) & {"mine", "infonce", "nwj"}]
    assert neural, "the tiny config should cover a neural experiment"
    expected |= {f"results/figures/{n}_convergence.{ext}" for n in neural for ext in ("png", "pdf")}
    assert set(results) == expected

    for path, res in results.items():
        assert res["caption"].strip(), f"{path} has no caption"
        assert res["labels"]["true MI (nats)"], path
        assert "nats" in res["caption"]
        if path.endswith(".png"):  # embedded: data:image/png;charset=...;base64,<data>
            assert res["mime_type"] == "image/png"
            head, _, data = res["data_uri"].partition(";base64,")
            assert head.startswith("data:image/png") and data, path
            assert base64.b64decode(data)[:8] == PNG_MAGIC

    # the Jinja captions are rendered: parameters, seeds and the true MI of the data
    cap = " ".join(results["results/figures/fig_n.png"]["caption"].split())
    assert "tiny n sweep" in cap  # the experiment's title (a rule parameter)
    assert "gaussian_beta" in cap and "beta = 1.0" in cap  # the data set (config)
    assert "2 seed(s) (1, 2)" in cap
    assert "0.6931" in cap  # (d/2) log(1 + beta^2) with d = 2, beta = 1
    assert "{{" not in cap and "{%" not in cap
    lin = results["results/tables/fig_k.csv"]
    assert lin["labels"]["true MI (nats)"] == f"{linear_mi(2, 0.5):.4f}"
    assert f"{linear_mi(2, 0.5):.4f}" in lin["caption"]
    assert "eps_lin" in results["results/tables/eps_sensitivity.csv"]["caption"]


def test_report_has_global_description(report):
    text = report.read_text()
    assert "mipipe: mutual-information estimators on synthetic data" in text


def chromium_dom(chromium, page, profile, budget_ms=20000):
    cmd = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--no-first-run",
        "--disable-dev-shm-usage", f"--user-data-dir={profile}",
        f"--virtual-time-budget={budget_ms}", "--dump-dom", page.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"chromium failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_report_renders_figure_in_headless_chromium(chromium, report, tmp_path):
    # A copy of the report that, once loaded, opens one figure as a click on it does (the
    # report's own `app.setView`: caption and labels in the side bar, the image in the main
    # panel) and records whether the browser decoded the embedded PNG.
    target = "results/figures/fig_n.png"
    probe = f"""
<script>
window.addEventListener("load", function () {{
  setTimeout(function () {{
    var path = {json.dumps(target)};
    app.setView({{navbarMode: "resultinfo", resultPath: path,
                  content: "img", contentPath: results[path].data_uri}});
    var tries = 0;
    (function check() {{
      var img = document.querySelector('img[src^="data:image/png"]');
      if (img && img.complete && img.naturalWidth > 0) {{
        document.body.setAttribute("data-probe", "png " + img.naturalWidth + "x" + img.naturalHeight);
      }} else if (tries++ < 100) {{
        setTimeout(check, 50);
      }} else {{
        document.body.setAttribute("data-probe", "no png rendered");
      }}
    }})();
  }}, 100);
}});
</script>
</body>"""
    page = tmp_path / "report.html"
    head, body_end, tail = report.read_text().rpartition("</body>")  # the page's own, last one
    assert body_end, "no </body> in the report"
    page.write_text(head + probe + tail)

    dom = chromium_dom(chromium, page, tmp_path / "profile")
    assert '<div id="app"><' in dom, "the report's React app did not render"
    m = re.search(r'data-probe="([^"]*)"', dom)
    assert m, "the probe did not run (report JavaScript failed?)"
    assert m.group(1).startswith("png "), m.group(1)
    width, height = map(int, m.group(1)[4:].split("x"))
    assert width > 300 and height > 200
    # What the app drew (the React root, not the embedded JSON): the figure's file name,
    # its labels, its rendered caption, and the image itself.
    start = dom.index('<div id="app">')
    app = dom[start : dom.find("<script", start)]
    visible = html.unescape(re.sub(r"<[^>]+>", " ", app))
    assert "fig_n.png" in visible
    assert "tiny n sweep" in visible
    assert "True MI" in visible and "0.6931" in visible
    assert "gaussian_beta" in visible
    assert re.search(r'<img[^>]*\bsrc="data:image/png[^"]*;base64,', app)


@pytest.mark.parametrize("config, inference", [("config.yaml", True), ("tests/configs/tiny.yaml", False)])
def test_report_heading_and_description_name_every_stage_of_the_run(config, inference):
    """The report's heading speaks of MI estimators (not only nearest-neighbour ones) and, when
    the config has an inference section, of dataset inference, which the description explains."""
    import types

    import jinja2

    repo = TINY.parents[2]
    cfg = yaml.safe_load((repo / config).read_text())
    text = jinja2.Template((repo / "report" / "workflow.rst").read_text()).render(
        snakemake=types.SimpleNamespace(config=cfg))
    heading, underline = [line for line in text.splitlines() if line.strip()][:2]
    assert len(underline) >= len(heading) and set(underline) == {"="}
    assert "mutual-information estimators" in heading and "nearest-neighbour" not in heading
    assert ("dataset inference" in heading) == inference
    description = text.split("In the synthetic benchmark")[0]
    assert ("Dziedzic et al. 2022" in description and "stolen" in description) == inference
