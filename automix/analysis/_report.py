"""`automix report`: one self-contained HTML page and a Markdown twin, with PNGs, for one study.

A section without data says why instead of vanishing, so every report has the same outline
(`build_report` lists the sections). Interactive figures come from `optuna.visualization` (plotly,
inlined: the page works offline); PNGs from `optuna.visualization.matplotlib` and matplotlib.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display on trial machines or CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import optuna.visualization as ov  # noqa: E402
import optuna.visualization.matplotlib as om  # noqa: E402
import pandas as pd  # noqa: E402
import plotly.graph_objects as go  # noqa: E402
from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator  # noqa: E402
from plotly.offline import get_plotlyjs  # noqa: E402

from automix.analysis._compare import difference_table, plot_compare, summary_table  # noqa: E402
from automix.analysis._multiplier import plot_multiplier  # noqa: E402
from automix.analysis._readback import StudyData, load_study_data  # noqa: E402
from automix.config._study import StudyConfig  # noqa: E402

log = logging.getLogger(__name__)
CONTOUR_PARAMS = ["mix_ratio", "weight_decay"]


@dataclass
class Section:
    """One report section: its title and its body in HTML and Markdown."""

    title: str
    html: list[str] = field(default_factory=list)
    md: list[str] = field(default_factory=list)

    def text(self, text: str) -> Section:
        self.html.append(f"<p>{html.escape(text)}</p>")
        self.md.append(text)
        return self

    def table(self, rows: list[dict]) -> Section:
        frame = pd.DataFrame(rows)
        self.html.append(frame.to_html(index=False, border=0, classes="table"))
        head = "| " + " | ".join(map(str, frame.columns)) + " |"
        rule = "|" + "---|" * len(frame.columns)
        body = ["| " + " | ".join(map(str, r)) + " |" for r in frame.itertuples(index=False)]
        self.md.append("\n".join([head, rule, *body]))
        return self


class Report:
    """Collects sections; figures go to `out_dir` as PNGs and into the page inline."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.sections: list[Section] = []
        self.pngs: list[Path] = []

    def png(self, section: Section, fig, name: str, *, embed: bool = True) -> None:
        """Save a matplotlib figure (or Axes) as `name`.png; embed it in the HTML unless a plotly twin is there."""
        fig = getattr(fig, "figure", None) or (fig.flat[0].figure if isinstance(fig, np.ndarray) else fig)
        path = self.out_dir / f"{name}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        self.pngs.append(path)
        section.md.append(f"![{section.title}]({path.name})")
        if embed:
            self.embed(section, path)

    def embed(self, section: Section, path: Path) -> None:
        """Put a PNG into the HTML as a data URI, so the page is one self-contained file."""
        data = base64.b64encode(path.read_bytes()).decode()
        section.html.append(f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">')

    def optuna_plot(self, section: Section, name: str, plotly_fn, mpl_fn, study, **kwargs) -> None:
        """One Optuna plot, interactive (plotly) in the HTML and as a PNG (matplotlib backend)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the matplotlib backend is marked experimental
            section.html.append(plotly_fn(study, **kwargs).to_html(full_html=False, include_plotlyjs=False))
            self.png(section, mpl_fn(study, **kwargs), name, embed=False)

    def write(self, title: str) -> tuple[Path, Path]:
        """Write report.html (plotly.js inlined, images as data URIs) and report.md."""
        toc = "".join(f'<li><a href="#s{i}">{html.escape(s.title)}</a></li>' for i, s in enumerate(self.sections))
        body = "".join(
            f'<section id="s{i}"><h2>{html.escape(s.title)}</h2>{"".join(s.html)}</section>'
            for i, s in enumerate(self.sections)
        )
        page = (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style><script>{get_plotlyjs()}</script></head>"
            f"<body><h1>{html.escape(title)}</h1><ul class='toc'>{toc}</ul>{body}</body></html>"
        )
        html_path, md_path = self.out_dir / "report.html", self.out_dir / "report.md"
        html_path.write_text(page, encoding="utf-8")
        md = [f"# {title}"] + [f"## {s.title}\n\n" + "\n\n".join(s.md) for s in self.sections]
        md_path.write_text("\n\n".join(md) + "\n", encoding="utf-8")
        return html_path, md_path


_CSS = (
    "body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em;color:#222}"
    "table.table{border-collapse:collapse;font-size:13px;margin:.5em 0}"
    ".table td,.table th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    "img{max-width:100%}section{border-top:1px solid #ddd;margin-top:1.5em}.toc{columns:2}"
)


def _target(data: StudyData) -> dict:
    """Plot/importance kwargs that pick the primary metric (needed for multi-objective studies)."""
    if len(data.study.directions) == 1:
        return {"target_name": data.metric}
    return {"target": lambda t: t.values[0], "target_name": data.metric}


STATE_ORDER = {"COMPLETE": 0, "PRUNED": 1, "FAIL": 2, "RUNNING": 3, "WAITING": 4, "REJECTED": 5}
MIN_TRIALS_PER_PARAM = 5  # below this many completed trials per varied param, importances are noise


def _summary(data: StudyData, section: Section) -> None:
    trials = data.trials
    states = trials["state"].value_counts().to_dict()
    section.text(f"{len(trials)} trials: " + ", ".join(f"{n} {s}" for s, n in states.items()) + ".")
    row = data.best_row()
    if row is None:
        section.text("No completed trial yet.")
    else:
        keys = ("value", "target_val_loss", "aux_val_loss", "target_acc", "target_acc_chance", "aux_acc")
        best = {"trial": int(row.name), **{p: row.get(p) for p in data.param_names}}
        best.update({k: row.get(k) for k in keys if k in row and pd.notna(row.get(k))})
        section.text("Best trial:")
        section.table([{k: _cell(v) for k, v in best.items()}])
    section.text(
        f"Every trial, best {data.metric} first within each state (complete, then pruned: its value is "
        "its last evaluation, then failed); a rejected suggestion was never trained."
    )
    section.table(_all_trials(data))


def _all_trials(data: StudyData) -> list[dict]:
    """A row per trial: number, state, value, params, tokens; sorted by state, then value."""
    frame = data.trials.copy()
    ascending = data.study.directions[0] == optuna.study.StudyDirection.MINIMIZE
    frame["_state"] = frame["state"].map(STATE_ORDER).fillna(9)
    frame["_value"] = frame["value"] if ascending else -frame["value"]
    frame = frame.sort_values(["_state", "_value", "number"], na_position="last")
    extras = [c for c in ("tokens",) if c in frame]
    rows = []
    for _, r in frame.iterrows():
        row = {"trial": int(r["number"]), "state": r["state"], "value": _cell(r["value"])}
        row.update({p: _cell(r.get(p)) for p in data.param_names})
        row.update({k: _cell(r.get(k)) for k in extras})
        rows.append(row)
    return rows


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _history(data: StudyData, report: Report, section: Section) -> None:
    """The metric of every trained trial by trial number, pruned ones too (their last evaluation:
    Optuna's own history plot shows complete trials only), with the best-so-far line."""
    frame = data.trials[data.trials["state"].isin(["COMPLETE", "PRUNED"]) & data.trials["value"].notna()]
    if frame.empty:
        section.text("No trained trial yet.")
        return
    frame = frame.sort_values("number")
    complete = frame[frame["state"] == "COMPLETE"]
    pruned = frame[frame["state"] == "PRUNED"]
    minimize = data.study.directions[0] == optuna.study.StudyDirection.MINIMIZE
    best = complete.set_index("number")["value"]
    best = (best.cummin() if minimize else best.cummax()).reindex(frame["number"]).ffill()
    section.text(
        f"{len(complete)} complete and {len(pruned)} pruned trials (pruned: the value at their last evaluation)."
    )
    fig = go.Figure()
    for part, name, marker in (
        (complete, "complete", {"color": "#1f77b4"}),
        (pruned, "pruned", {"color": "#999", "symbol": "x"}),
    ):
        fig.add_scatter(x=part["number"].tolist(), y=part["value"].tolist(), mode="markers", name=name, marker=marker)
    fig.add_scatter(x=best.index.tolist(), y=best.tolist(), mode="lines", name="best so far", line={"color": "#c44e52"})
    fig.update_layout(xaxis_title="trial", yaxis_title=data.metric, height=420)
    section.html.append(fig.to_html(full_html=False, include_plotlyjs=False))
    plot, ax = plt.subplots(figsize=(7, 4))
    ax.scatter(complete["number"], complete["value"], color="#1f77b4", label="complete")
    ax.scatter(pruned["number"], pruned["value"], color="#999", marker="x", label="pruned (last evaluation)")
    ax.plot(best.index, best.values, color="#c44e52", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(data.metric)
    ax.legend(fontsize=8)
    report.png(section, plot, "history", embed=False)


def _importance(data: StudyData, report: Report, section: Section) -> None:
    complete = data.completed
    params = [p for p in data.param_names if p in complete and complete[p].nunique() > 1]
    if len(complete) < 3 or len(params) < 2:
        section.text(f"Needs at least 3 completed trials and 2 varied params (have {len(complete)}, {params}).")
        return
    kwargs = {k: v for k, v in _target(data).items() if k == "target"}
    found = {}
    for name, evaluator in (
        ("PED-ANOVA", PedAnovaImportanceEvaluator()),
        ("fANOVA", FanovaImportanceEvaluator(seed=0)),
    ):
        try:
            found[name] = optuna.importance.get_param_importances(
                data.study, evaluator=evaluator, params=params, **kwargs
            )
        except (ValueError, RuntimeError) as e:
            section.text(f"{name}: not available ({e}).")
    if not found:
        return
    frame = pd.DataFrame(found).reindex(params).fillna(0.0)
    frame = frame.sort_values(frame.columns[0], ascending=False)
    section.text(f"Share of the variance of {data.metric} each param explains, over {len(complete)} completed trials.")
    enough = MIN_TRIALS_PER_PARAM * len(params)
    if len(complete) < enough:
        section.text(
            f"Too few trials for this ranking to mean much: {len(complete)} completed trials for "
            f"{len(params)} varied params (about {enough} are needed); read it as a hint, not a result."
        )
    section.table([{"param": p, **{k: f"{v:.3f}" for k, v in r.items()}} for p, r in frame.iterrows()])
    ax = frame.plot.barh(figsize=(7, 0.5 + 0.5 * len(params)), title=f"lever importance for {data.metric}")
    ax.invert_yaxis()
    report.png(section, ax, "importance")


def pareto_mask(loss: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """Points no other point beats on both (lower loss and higher accuracy)."""
    loss, acc = np.asarray(loss, float), np.asarray(acc, float)
    return np.array(
        [not np.any((loss <= l_) & (acc >= a_) & ((loss < l_) | (acc > a_))) for l_, a_ in zip(loss, acc, strict=True)]
    )


def _pareto(data: StudyData, report: Report, section: Section) -> None:
    frame = data.completed
    if "target_acc" not in frame or frame["target_acc"].isna().all():
        section.text("No target_acc in this study: configure data.eval_sets to score multiple-choice sets.")
        return
    frame = frame.dropna(subset=["target_val_loss", "target_acc"])
    loss, acc = frame["target_val_loss"].to_numpy(), frame["target_acc"].to_numpy()
    front = pareto_mask(loss, acc)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(loss[~front], acc[~front], color="#999", label="trial")
    order = np.argsort(loss[front])
    ax.plot(loss[front][order], acc[front][order], "o-", color="#c44e52", label="Pareto front")
    for n, x, y in zip(frame["number"], loss, acc, strict=True):
        ax.annotate(str(n), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if "target_acc_chance" in frame:
        ax.axhline(frame["target_acc_chance"].mean(), color="grey", linestyle="--", label="chance")
    ax.set_xlabel("target_val_loss (lower is better)")
    ax.set_ylabel("target_acc (higher is better)")
    ax.legend(fontsize=8)
    section.text(f"Trials on the front: {sorted(frame['number'][front].tolist())}.")
    report.png(section, fig, "pareto")


def _from_json(path: Path, section: Section, missing: str):
    if not path.is_file():
        section.text(missing)
        return None
    return json.loads(path.read_text())


def _compare(data: StudyData, report: Report, section: Section) -> None:
    result = _from_json(
        data.work_dir / "compare.json", section, "Not measured: run `automix compare JOINT MIX_ONLY TUNE_ONLY`."
    )
    if result is not None:
        section.text(
            f"Best settings of each search at U = {result['unique_tokens']:,}, re-trained with seeds {result['seeds']}."
        )
        section.table(summary_table(result))
        if rows := difference_table(result):
            section.text("Each pair of levers, earlier minus later (seed-paired, and with search-to-search variation):")
            section.table(rows)
        report.png(section, plot_compare(result), "mix_vs_tune")


def _multiplier(data: StudyData, report: Report, section: Section) -> None:
    result = _from_json(
        data.work_dir / "multiplier.json",
        section,
        "Not measured: run `automix multiplier CONFIG --reference TUNE_ONLY`.",
    )
    if result is None:
        return
    ref, mixed = result["points"]["reference"], result["points"]["mixed"]
    if "grid" not in ref:  # written before the reference was re-tuned: its layout differs
        section.text("multiplier.json is from an older automix: run `automix multiplier` again.")
        return
    n_grid = len(ref["grid"])
    rows = [
        {
            "metric": e["metric"],
            "mixed score": f"{e['score']:.4f}",
            "multiplier": f"{e['multiplier']:.2f}",
            "95% interval": f"[{e['low']:.2f}, {e['high']:.2f}]",
            "fit": e["fit"]["kind"],
            **({"grid points": n_grid} if n_grid > 1 else {}),
            "failed resamples": f"{e['n_failed']}/{e['n_boot']}",
        }
        for e in result["estimates"]
    ]
    retuned = f", the reference re-tuned at each U over {n_grid} grid points" if n_grid > 1 else ""
    section.text(
        "U_equivalent / U: the unique target data a target-only run needs to match the mixed lever "
        f"(searches × seeds: {len(mixed['studies'])} × {len(mixed['seed'])}{retuned})."
    )
    section.table(rows)
    report.png(section, plot_multiplier(result), "multiplier")


def _transfer(data: StudyData, report: Report, section: Section) -> None:
    pngs = sorted(data.work_dir.glob("transfer*.png"))
    if not pngs:
        section.text("No transfer plots in the work directory (run `automix transfer`).")
    for path in pngs:
        report.pngs.append(path)
        section.md.append(f"![{path.stem}]({os.path.relpath(path, report.out_dir)})")
        report.embed(section, path)


def build_report(config: StudyConfig, out_dir: Path | None = None, log_to_mlflow: bool = True) -> tuple[Path, Path]:
    """Write the report of `config`'s study into `out_dir` (default WORK/report); returns (html, md).

    Sections: summary, optimisation history, parallel coordinates, contour of the metric over
    mix_ratio × weight_decay, lever importance (PED-ANOVA and fANOVA), Pareto front of target loss vs
    target accuracy, mix vs tune (`compare.json`), the effective-data multiplier (`multiplier.json`)
    and transfer plots (`transfer*.png`), the last three once their commands have written them into
    the work directory. With `log_to_mlflow`, everything goes to the study's latest MLflow parent
    run under `report/`.
    """
    data = load_study_data(config)
    out_dir = out_dir or data.work_dir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    report = Report(out_dir)
    target = _target(data)
    has_complete = len(data.completed) > 0

    def add(title: str) -> Section:
        report.sections.append(Section(title))
        return report.sections[-1]

    _summary(data, add("Summary"))
    _history(data, report, add("Optimisation history"))
    section = add("Parallel coordinates")
    if has_complete:
        report.optuna_plot(
            section, "parallel", ov.plot_parallel_coordinate, om.plot_parallel_coordinate, data.study, **target
        )
    else:
        section.text("No completed trial yet.")
    section = add("Contour: mix_ratio × weight_decay")
    if all(p in data.completed and data.completed[p].nunique() > 1 for p in CONTOUR_PARAMS):
        report.optuna_plot(
            section, "contour", ov.plot_contour, om.plot_contour, data.study, params=CONTOUR_PARAMS, **target
        )
    else:
        section.text("mix_ratio and weight_decay are not both searched (and varied) in this study.")
    _importance(data, report, add("Lever importance"))
    _pareto(data, report, add("Pareto front: target loss vs accuracy"))
    _compare(data, report, add("Mix vs tune"))
    _multiplier(data, report, add("Effective-data multiplier"))
    _transfer(data, report, add("Transfer"))
    paths = report.write(f"automix report: {config.study}")
    if log_to_mlflow:
        _log(data, out_dir)
    return paths


def _log(data: StudyData, out_dir: Path) -> None:
    try:
        parent = data.parent_run_id()
        if parent is not None:
            data.tracker.client.log_artifacts(parent, str(out_dir), "report")
    except Exception as e:  # noqa: BLE001 - tracking never fails a report that was written
        log.warning("MLflow: could not log the report: %s", e)
