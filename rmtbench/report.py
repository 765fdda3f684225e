"""One HTML page for a sweep: every figure with its caption, the error tables, the provenance.

The report reads only the results folder (figures with their ``captions.json``, the CSV error tables,
the gathered stores' attributes), so it can be rebuilt at any time, also on a partial sweep:
experiments not gathered yet are listed as such. Images are embedded (base64) by default, so the one
file can be mailed or archived; ``embed=False`` links them relative to the page instead.

    python -m rmtbench report --sweep config/config.yaml        # -> results/<sweep>/report.html
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

log = logging.getLogger("rmtbench.report")

MAX_TABLE_ROWS = 200
"""Rows of an error table shown inline; the full CSV is linked."""

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #1f77b4;padding-bottom:.2em}h2{font-size:1.3em;margin-top:2em;border-bottom:1px solid #ccc}
h3{font-size:1.05em}code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85em}
pre{background:#f6f8fa;padding:.8em;overflow-x:auto;border-radius:4px}
figure{margin:1.5em 0;padding:.8em;border:1px solid #e3e3e3;border-radius:4px;break-inside:avoid}
figure img{max-width:100%;height:auto;display:block;margin:0 auto}
figcaption{font-size:.9em;margin-top:.6em}figcaption .missing,.warn{color:#b00020;font-weight:600}
table{border-collapse:collapse;font-size:.82em;margin:.6em 0}th,td{border:1px solid #ddd;padding:.2em .5em;text-align:right}
th{background:#f0f3f7}td:first-child,th:first-child{text-align:left}
.meta{color:#555;font-size:.9em}details{margin:.6em 0}summary{cursor:pointer;font-weight:600}
nav ul{columns:2;font-size:.9em}
"""


@dataclass
class FigureEntry:
    """A figure file and its caption (None when ``captions.json`` has none for it)."""

    path: Path
    caption: str | None
    pdf: Path | None = None


@dataclass
class ExperimentSection:
    """What the report shows for one experiment block."""

    name: str
    kind: str
    description: str
    cells_total: int
    cells_done: int
    store: Path | None
    attrs: dict[str, Any] = field(default_factory=dict)
    figures: list[FigureEntry] = field(default_factory=list)
    table: Path | None = None


def _load_sweep(sweep: Any) -> Any:
    from rmtbench.config import Sweep, load_sweep

    if isinstance(sweep, Sweep):
        return sweep
    return load_sweep(sweep, project_dir=Path.cwd())


def _store_attrs(path: Path) -> dict[str, Any]:
    """Attributes of a store, JSON decoded, read without loading any array."""
    from rmtbench.api import results_provenance
    from rmtbench.store import open_dataset

    dataset = open_dataset(path, load=False)
    try:
        return results_provenance(dataset)
    finally:
        dataset.close()


def figure_entries(folder: Path) -> list[FigureEntry]:
    """The PNG figures of ``folder`` in name order, with their captions from ``captions.json``.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.png").write_bytes(b"png"), (folder / "b.png").write_bytes(b"png")
    >>> _ = (folder / "captions.json").write_text('{"a.png": "The caption of a."}')
    >>> [(f.path.name, f.caption) for f in figure_entries(folder)]
    [('a.png', 'The caption of a.'), ('b.png', None)]
    """
    if not folder.is_dir():
        return []
    captions_path = folder / "captions.json"
    captions = json.loads(captions_path.read_text()) if captions_path.is_file() else {}
    entries = []
    for png in sorted(folder.glob("*.png")):
        pdf = png.with_suffix(".pdf")
        entries.append(FigureEntry(png, captions.get(png.name), pdf if pdf.is_file() else None))
    return entries


def collect_sections(sweep: Any) -> list[ExperimentSection]:
    """What there is to report for every experiment of ``sweep`` (a Sweep, config path or mapping)."""
    sweep = _load_sweep(sweep)
    root = Path(sweep.project_dir)
    descriptions = {block["name"]: block.get("description") for block in sweep.config.get("experiments", [])}
    sections = []
    for name, plan in sweep.experiments.items():
        store = root / sweep.gathered_store(name)
        table = root / sweep.table(name)
        sections.append(ExperimentSection(
            name=name, kind=plan.kind.kind, description=descriptions.get(name) or plan.kind.description,
            cells_total=len(plan.cells), cells_done=sum((root / sweep.cell_store(name, c.id)).is_dir() for c in plan.cells),
            store=store if store.is_dir() else None, attrs=_store_attrs(store) if store.is_dir() else {},
            figures=figure_entries(root / sweep.figures_dir(name)), table=table if table.is_file() else None,
        ))
    return sections


# -- HTML pieces -----------------------------------------------------------------------------------
def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _anchor(*parts: str) -> str:
    return "-".join("".join(ch if ch.isalnum() else "-" for ch in p) for p in parts)


def _image_src(path: Path, out_dir: Path, embed: bool) -> str:
    if embed:
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    return _e(Path(os.path.relpath(path, out_dir)).as_posix())


def _link(path: Path, out_dir: Path) -> str:
    return _e(Path(os.path.relpath(path.resolve(), out_dir.resolve())).as_posix())


def _error_summary(frame: Any) -> str:
    """Per quantity: rows, median and max |relative error|, median |z|, and distances when the table has them.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"quantity": ["a", "a"], "rel_error": [0.01, -0.03], "z_score": [1.0, -2.0]})
    >>> "<td>a</td><td>2</td><td>0.02</td><td>0.03</td><td>1.5</td>" in _error_summary(frame)
    True
    """
    if "rel_error" not in frame.columns and "distance" not in frame.columns:
        return ""
    import numpy as np

    def values(part: Any, column: str) -> Any:
        if column not in part.columns:
            return np.array([])
        v = np.abs(part[column].to_numpy(dtype=float))
        return v[np.isfinite(v)]

    def cell(v: Any, reduce: Any) -> str:
        return f"<td>{reduce(v):.3g}</td>" if v.size else "<td>–</td>"

    distances = "distance" in frame.columns
    group = frame.groupby("quantity") if "quantity" in frame.columns else [("all", frame)]
    rows = []
    for quantity, part in group:
        rel, z, dist = values(part, "rel_error"), values(part, "z_score"), values(part, "distance")
        row = f"<tr><td>{_e(quantity)}</td><td>{len(part)}</td>{cell(rel, np.median)}{cell(rel, np.max)}{cell(z, np.median)}"
        if distances:
            row += f"{cell(dist, np.median)}{cell(dist, np.max)}"
        rows.append(row + "</tr>")
    head = "<th>quantity</th><th>rows</th><th>median |rel. error|</th><th>max |rel. error|</th><th>median |z|</th>"
    if distances:
        head += "<th>median distance</th><th>max distance</th>"
    return f"<table><thead><tr>{head}</tr></thead><tbody>" + "".join(rows) + "</tbody></table>"


def _table_html(path: Path, out_dir: Path) -> str:
    import pandas as pd

    from rmtbench.compare import MIN_Z_COUNT

    frame = pd.read_csv(path)
    summary = _error_summary(frame)
    shown = frame.head(MAX_TABLE_ROWS)
    body = shown.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="–", border=0)
    more = f" (first {MAX_TABLE_ROWS} of {len(frame)} rows)" if len(frame) > MAX_TABLE_ROWS else f" ({len(frame)} rows)"
    return (
        f"<h3>Theory against simulation</h3>{summary}"
        "<p class='meta'>rel. error = (seed mean − theory) / theory; z = (seed mean − theory) / standard error of the mean, "
        f"given only where at least {MIN_Z_COUNT} seeds (or draws) are behind the mean (column count, where the table has it): "
        "with fewer it is a t statistic of under 3 degrees of freedom, whose spread is not that of a z; "
        "distance: the table's own distance between simulation and theory (e.g. a Kolmogorov–Smirnov distance of spectra).</p>"
        f"<details><summary>Full error table{_e(more)}</summary>{body}</details>"
        f"<p class='meta'>CSV: <a href='{_link(path, out_dir)}'>{_e(path.name)}</a></p>"
    )


def _activations_used(sweep: Any) -> set[str]:
    """Canonical names of the activations the sweep's cells name (``activation`` or ``activations``)."""
    from rmtbench.activations import get_activation

    used: set[str] = set()
    for plan in sweep.experiments.values():
        for cell in plan.cells:
            specs = [cell.point.get("activation")] + list(cell.point.get("activations") or [])
            for spec in specs:
                if spec is not None:
                    used.add(get_activation(spec).name)
    return used


def _coefficient(value: float) -> str:
    # below the quadrature's accuracy (about 1e-13) a coefficient is zero: print it so
    return "0" if abs(value) < 1e-12 else f"{value:.6g}"


def _activation_table_html(sweep: Any) -> str:
    """Hermite coefficients, ν and the conjugate-kernel α's of every registered activation at τ = 1."""
    from rmtbench.activations import activation_names, alpha_coefficients, gaussian_moments, hermite_coefficients, hermite_nu

    used = _activations_used(sweep)
    head = ("<tr><th>activation</th><th>in this sweep</th><th>a<sub>0</sub></th><th>a<sub>1</sub></th><th>a<sub>2</sub></th>"
            "<th>a<sub>3</sub></th><th>ν = E φ²</th><th>E φ′</th><th>E φ″</th><th>α<sub>0</sub></th><th>α<sub>1</sub></th>"
            "<th>α<sub>2</sub></th></tr>")
    rows = []
    for name in activation_names():
        a = hermite_coefficients(name, tau=1.0, order=3)
        m = gaussian_moments(name, tau=1.0)
        alpha = alpha_coefficients(name, tau=1.0)
        cells = [*a, hermite_nu(name, tau=1.0), m.d1, m.d2, *alpha[:3]]
        rows.append(f"<tr><td>{_e(name)}</td><td>{'yes' if name in used else ''}</td>"
                    + "".join(f"<td>{_coefficient(v)}</td>" for v in cells) + "</tr>")
    return ("<h2 id='activations'>Activations</h2>"
            "<p>Normalised Hermite coefficients a<sub>k</sub> = E[φ(ξ) He<sub>k</sub>(ξ)]/√k! and ν = E φ(ξ)² at τ = 1 "
            "(formula sheet sec. 1; quadrature split at the kinks, about 1e-13), the Stein moments E φ′(ξ), E φ″(ξ) "
            "(weak derivatives), and the conjugate-kernel coefficients α<sub>0</sub> = Var φ − (E φ′)², α<sub>1</sub> = (E φ′)², "
            "α<sub>2</sub> = (E φ″)²/4 (formula sheet sec. 4.2; α<sub>3</sub> = 2α<sub>2</sub>). At another data scale τ use "
            "<code>rmtbench.hermite_coefficients(name, tau=τ)</code> and <code>rmtbench.alpha_coefficients(name, tau=τ)</code>.</p>"
            f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>")


def _provenance_html(sections: list[ExperimentSection], sweep: Any) -> str:
    revisions = {s.name: s.attrs.get("git_revision") for s in sections if s.attrs}
    versions: dict[str, set[str]] = {}
    for s in sections:
        for package, version in (s.attrs.get("package_versions") or {}).items():
            versions.setdefault(package, set()).add(str(version))
    config = next((s.attrs["config"] for s in sections if isinstance(s.attrs.get("config"), Mapping)), sweep.config)
    parts = ["<h2 id='provenance'>Provenance</h2>"]
    if revisions:
        parts.append("<table><thead><tr><th>experiment</th><th>git revision of the gathered results</th></tr></thead><tbody>"
                     + "".join(f"<tr><td>{_e(k)}</td><td><code>{_e(v)}</code></td></tr>" for k, v in revisions.items())
                     + "</tbody></table>")
    if versions:
        parts.append("<table><thead><tr><th>package</th><th>version</th></tr></thead><tbody>"
                     + "".join(f"<tr><td>{_e(k)}</td><td>{_e(', '.join(sorted(v)))}</td></tr>" for k, v in sorted(versions.items()))
                     + "</tbody></table>")
    else:
        parts.append("<p class='warn'>No gathered store yet: package versions and git revision are recorded when results are gathered.</p>")
    parts.append("<details open><summary>Configuration (validated, with defaults)</summary><pre>"
                 + _e(json.dumps(config, indent=2, sort_keys=True, default=str)) + "</pre></details>")
    return "".join(parts)


def render_report(sections: list[ExperimentSection], sweep: Any, out_dir: Path, *, embed: bool = True) -> str:
    """The HTML text of the report (see :func:`build_report`)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        __version__ = version("rmtbench")
    except PackageNotFoundError:
        __version__ = "unknown"
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    total_figures = sum(len(s.figures) for s in sections)
    uncaptioned = [f"{s.name}/{f.path.name}" for s in sections for f in s.figures if not f.caption]
    head = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>rmtbench report: {_e(sweep.name)}</title><style>{_CSS}</style></head><body>"
        f"<h1>rmtbench report: sweep <code>{_e(sweep.name)}</code></h1>"
        f"<p class='meta'>Root seed {_e(sweep.seed)} · results in <code>{_e(sweep.out)}</code> · "
        f"{len(sections)} experiment(s), {total_figures} figure(s) · built {now} by rmtbench {_e(__version__)}</p>"
        "<p>Random-matrix-theory predictions beside their simulation. In every figure, points are simulation "
        "(means over independent weight draws with standard-error bars) and lines are theory, computed "
        "independently of the simulated numbers.</p>"
    )
    if uncaptioned:
        head += f"<p class='warn'>Figures without a caption: {_e(', '.join(uncaptioned))}</p>"
    nav = ["<nav><h2>Contents</h2><ul>"]
    for s in sections:
        nav.append(f"<li><a href='#{_anchor('exp', s.name)}'>{_e(s.name)}</a> ({_e(s.kind)}, {len(s.figures)} figure(s))</li>")
    nav.append("<li><a href='#activations'>Activations</a></li><li><a href='#provenance'>Provenance</a></li></ul></nav>")

    body = []
    number = 0
    for s in sections:
        body.append(f"<h2 id='{_anchor('exp', s.name)}'>{_e(s.name)} <span class='meta'>({_e(s.kind)})</span></h2>")
        body.append(f"<p>{_e(s.description)}</p>")
        missing = s.attrs.get("missing_cells") or []
        status = f"{s.cells_done} of {s.cells_total} cells computed"
        status += f"; gathered store <code>{_e(s.store.name)}</code>" if s.store else "; <span class='warn'>not gathered yet</span>"
        if missing:
            status += f"; <span class='warn'>{len(missing)} cell(s) or theory group(s) missing when gathered</span>"
        body.append(f"<p class='meta'>{status}</p>")
        for fig in s.figures:
            number += 1
            caption = _e(fig.caption) if fig.caption else "<span class='missing'>No caption recorded in captions.json.</span>"
            pdf = f" <a href='{_link(fig.pdf, out_dir)}'>[PDF]</a>" if fig.pdf else ""
            body.append(
                f"<figure id='{_anchor('fig', s.name, fig.path.stem)}'>"
                f"<img src='{_image_src(fig.path, out_dir, embed)}' alt='{_e(fig.caption or fig.path.stem)}' loading='lazy'>"
                f"<figcaption><b>Figure {number}</b> (<code>{_e(fig.path.name)}</code>). {caption}{pdf}</figcaption></figure>"
            )
        if not s.figures:
            body.append("<p class='meta'>No figures yet.</p>")
        if s.table is not None:
            body.append(_table_html(s.table, out_dir))
    return head + "".join(nav) + "".join(body) + _activation_table_html(sweep) + _provenance_html(sections, sweep) + "</body></html>\n"


def build_report(sweep: Any, out_html: str | os.PathLike[str] | None = None, *, embed: bool = True) -> Path:
    """Write the one-page HTML report of a sweep and return its path.

    Parameters
    ----------
    sweep
        A :class:`rmtbench.config.Sweep`, or a config path / mapping (relative paths against the
        current directory, as the CLI does).
    out_html
        Output file; default ``<results>/<sweep>/report.html`` inside the project.
    embed
        Embed the images (base64, one self-contained file) or link them relative to the page.

    Returns
    -------
    Path
        The written file. It is written to a temporary name and renamed, so a reader never sees half.
    """
    sweep = _load_sweep(sweep)
    from rmtbench.store import write_text_atomic

    out = Path(out_html) if out_html is not None else Path(sweep.project_dir) / sweep.out / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    sections = collect_sections(sweep)
    write_text_atomic(out, render_report(sections, sweep, out.parent, embed=embed))
    figures = sum(len(s.figures) for s in sections)
    log.info("report %s: %d experiment(s), %d figure(s)", out, len(sections), figures)
    return out
