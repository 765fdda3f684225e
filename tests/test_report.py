"""The HTML report of a tiny sweep run through the CLI: every figure with its caption, tables, provenance.

One experiment is run completely (simulate, theory, gather, compare, plot), a second one not at all,
so the report is also checked on a partial sweep. When Chromium is installed, the page is rendered
headless and the screenshot must show the figures' colours.
"""
from __future__ import annotations

import base64
import html
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import yaml

from rmtbench.report import build_report

CONFIG = {
    "sweep": "tiny",
    "seed": 5,
    "results": "results",
    "dask": {"mode": "synchronous"},
    "datasets": {"g": {"kind": "gmm", "p_over_n": 0.5}},
    "experiments": [
        {"name": "rf", "kind": "rf_ridge", "description": "Tiny double descent <for the report test>.", "seeds": 2,
         "gamma": [0.1, 0.01], "n_test": 16,
         "grid": {"activation": ["relu"], "weights": ["gaussian"], "dataset": ["g"], "n": [32], "d_over_n": [0.5, 2.0]}},
        {"name": "later", "kind": "rf_ridge", "seeds": 1, "gamma": [0.1], "n_test": 8,
         "grid": {"activation": ["erf"], "weights": ["gaussian"], "dataset": ["g"], "n": [16], "d_over_n": [1.0]}},
    ],
}


class _Figures(HTMLParser):
    """Collects (img src, figcaption text) per <figure>, and the page text."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: list[dict[str, str]] = []
        self.text: list[str] = []
        self._in_caption = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "figure":
            self.figures.append({"src": "", "caption": ""})
        elif tag == "img" and self.figures:
            self.figures[-1]["src"] = dict(attrs)["src"] or ""
        elif tag == "figcaption":
            self._in_caption = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "figcaption":
            self._in_caption = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_caption:
            self.figures[-1]["caption"] += data


def _parse(path: Path) -> _Figures:
    parser = _Figures()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder with the first experiment run through the CLI (in-process) and the report built."""
    import os

    from rmtbench.cli import main
    from rmtbench.config import load_sweep

    root = tmp_path_factory.mktemp("project")
    (root / "sweep.yaml").write_text(yaml.safe_dump(CONFIG))
    cwd = os.getcwd()
    os.chdir(root)
    try:
        sweep = load_sweep("sweep.yaml", project_dir=root)
        plan = sweep.experiments["rf"]
        common = ["--sweep", "sweep.yaml", "--experiment", "rf"]
        for cell in plan.cells:
            assert main(["simulate", *common, "--cell", cell.id, "--out", str(sweep.cell_store("rf", cell.id))]) == 0
        for key in plan.theory_groups():
            assert main(["theory", *common, "--key", key, "--out", str(sweep.theory_store("rf", key))]) == 0
        store = str(sweep.gathered_store("rf"))
        assert main(["gather", *common, "--out", store]) == 0
        assert main(["compare", *common, "--store", store, "--out", str(sweep.table("rf"))]) == 0
        assert main(["plot", *common, "--store", store, "--out", str(sweep.figures_dir("rf"))]) == 0
        assert main(["report", "--sweep", "sweep.yaml"]) == 0  # the CLI verb, default output path
    finally:
        os.chdir(cwd)
    return root


def test_every_figure_appears_with_its_caption(project: Path):
    report = project / "results/tiny/report.html"
    figures_dir = project / "results/tiny/figures/rf"
    captions = json.loads((figures_dir / "captions.json").read_text())
    pngs = sorted(figures_dir.glob("*.png"))
    assert len(pngs) >= 2 and set(captions) == {p.name for p in pngs}
    page = _parse(report)
    assert len(page.figures) == len(pngs)
    for png, figure in zip(pngs, page.figures):
        assert png.name in figure["caption"]
        assert captions[png.name] in figure["caption"], (png.name, figure["caption"])
        assert len(captions[png.name]) > 80  # a real caption: what, theory, data, sizes
        prefix = "data:image/png;base64,"
        assert figure["src"].startswith(prefix)
        assert base64.b64decode(figure["src"][len(prefix):]) == png.read_bytes()
    text = "".join(page.text)
    assert "Figures without a caption" not in text
    assert "Tiny double descent <for the report test>." in text  # the config's description, escaped once


def test_error_table_and_provenance(project: Path):
    import pandas as pd

    from rmtbench.api import open_results, results_provenance

    text = "".join(_parse(project / "results/tiny/report.html").text)
    table = pd.read_csv(project / "results/tiny/tables/rf.csv")
    assert {"train_mse", "test_mse"} <= set(table["quantity"])
    for quantity, part in table.groupby("quantity"):
        rel = np.abs(part["rel_error"].to_numpy(float))
        rel = rel[np.isfinite(rel)]
        median = f"{np.median(rel):.3g}" if rel.size else "–"  # quantities without a theory value show a dash
        assert f"{quantity}{len(part)}{median}" in text  # summary row: quantity, rows, median |rel. error|
    meta = results_provenance(open_results(project / "results/tiny", "rf"))
    assert meta["git_revision"] in text
    assert f"numpy{meta['package_versions']['numpy']}" in text
    assert '"seed": 5' in text and '"sweep": "tiny"' in text


def test_activation_table_lists_every_registered_activation(project: Path):
    """Issue 3: the Hermite coefficients of every registered activation are a table of the report."""
    from rmtbench.activations import activation_names, hermite_coefficients

    page = (project / "results/tiny/report.html").read_text(encoding="utf-8")
    table = page[page.index("id='activations'"):]
    table = table[: table.index("</table>")]
    rows = {row.split("</td>", 1)[0]: row for row in table.split("<tr><td>")[1:]}
    assert set(rows) == set(activation_names())
    assert "<td>yes</td>" in rows["relu"] and "<td>yes</td>" in rows["erf"] and "<td>yes</td>" not in rows["tanh"]
    for name in ("relu", "erf", "cos"):
        cells = [c.split(">")[-1] for c in rows[name].split("</td>")[2:6]]
        expected = [0.0 if abs(a) < 1e-12 else a for a in hermite_coefficients(name, order=3)]
        np.testing.assert_allclose([float(c) for c in cells], expected, rtol=1e-5, atol=0)


def test_partial_sweep_is_reported(project: Path):
    text = " ".join(_parse(project / "results/tiny/report.html").text)
    assert "2 of 2 cells computed" in text
    assert "0 of 1 cells computed" in text and "not gathered yet" in text
    assert "No figures yet." in text


def test_linked_images_and_a_missing_caption(project: Path, tmp_path: Path):
    copy = tmp_path / "copy"
    shutil.copytree(project, copy)
    figures_dir = copy / "results/tiny/figures/rf"
    shutil.copy(next(figures_dir.glob("*.png")), figures_dir / "zz_uncaptioned.png")
    from rmtbench.config import load_sweep

    out = build_report(load_sweep(copy / "sweep.yaml", project_dir=copy), copy / "elsewhere" / "report.html", embed=False)
    page = _parse(out)
    for figure in page.figures:
        assert not figure["src"].startswith("data:")
        assert (out.parent / html.unescape(figure["src"])).is_file()
    assert "No caption recorded" in page.figures[-1]["caption"]
    assert "Figures without a caption: rf/zz_uncaptioned.png" in "".join(page.text)


CHROMIUM = next(filter(None, map(shutil.which, ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome"))), None)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt package 'chromium-headless-shell' or 'chromium'); the screenshot check needs it")
def test_report_renders_in_headless_chromium(project: Path, tmp_path: Path):
    """The browser decodes the embedded figures: the screenshot holds the figures' red (#d62728) pixels."""
    import matplotlib.image

    shot = tmp_path / "report.png"
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,2600",
         f"--screenshot={shot}", (project / "results/tiny/report.html").resolve().as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert shot.is_file(), result.stderr[-2000:]
    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (2600, 1200)
    red = np.all(np.abs(pixels - np.array([214, 39, 40]) / 255) < 0.06, axis=-1).sum()
    assert red > 300, f"only {red} figure-red pixels: figures not rendered"
    assert pixels.std() > 0.05  # not a blank page
