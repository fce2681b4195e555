"""The reference study end to end — what ``agnlens demo`` runs, composed from the stage verbs.

simulate (or load a store) → split → tune and test, two-class and three-class →
:func:`agnlens.stages.classify` of every spectrum (the predictions table of ``agnlens classify``,
with its applicability checks, plus ``split``) → :func:`agnlens.stages.explain` (exact gradient) of
every misclassified test spectrum and a seeded random sample: maps, line table, centre vs wings,
figures → measurements, faithfulness → t-SNE → real spectra beside it
(:func:`agnlens.study_real.real_section`) → :func:`agnlens.stages.report`. Every file is named by
:class:`~agnlens.results.ResultsFolder` (docs/results-layout.md).
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agnlens.atomic import jsonable, write_csv, write_json
from agnlens.classes import CLASSES, TASK_CLASSES
from agnlens.plot.save import DPI, check_dpi, check_format, save_figure
from agnlens.results import ResultsFolder
from agnlens.spectra import SpectrumSet

log = logging.getLogger(__name__)

@dataclass
class StudyResult:
    """What :func:`run_study` produced: the metrics dictionary and where the files are."""

    out: Path
    metrics: dict
    report: Path | None = None
    timings: dict = field(default_factory=dict)

    def summary_lines(self) -> list[str]:
        """The one-screen summary printed at the end of ``agnlens demo``."""
        m = self.metrics
        kind = "SIMULATED" if m["dataset"]["simulated"] else "real"
        lines = [
            f"{m['dataset']['n_spectra']} {kind} spectra {m['dataset']['counts']} on the "
            f"{m['dataset']['grid']['name']} grid; split {m['split']['train']}/"
            f"{m['split']['validation']}/{m['split']['test']} (train/validation/test)",
        ]
        for task in ("binary", "multiclass"):
            t = m[task]
            lo, hi = t["test"]["f1_ci95"]
            lines.append(
                f"{task:>10}: best {_fmt_params(t['best_params'])}; test F1 {t['test']['f1']:.3f} "
                f"[{lo:.3f}, {hi:.3f}], precision {t['test']['precision']:.3f}, recall "
                f"{t['test']['recall']:.3f}" + (" (simulated)" if m["dataset"]["simulated"] else "")
            )
        a = m["multiclass"].get("applicability")
        if a:
            flags = ", ".join(f"{k} {v}" for k, v in sorted(a["flags"].items(), key=lambda kv: -kv[1]))
            lines.append(f"  classify: {a['n_applicable']} of {a['n']} predictions applicable"
                         + (f" (flags: {flags})" if flags else ""))
        s = m["saliency"]
        lines.append(
            f"  saliency: {s['n_maps']} exact maps ({s['n_misclassified']} misclassified, "
            f"{s['n_random']} random); max relative error vs finite differences "
            f"{s['max_rel_error_vs_finite_differences']:.1e}"
        )
        lines.append(f" embedding: t-SNE k-NN accuracy {m['embedding']['knn_accuracy']:.3f}")
        lines.append(f"     total: {m['timings_s']['total']:.0f} s")
        if self.report is not None:
            lines.append(f"    report: {self.report}")
        return lines


def _fmt_params(p: dict) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in p.items() if v is not None)


class _Timer:
    def __init__(self, callback: Callable[[str], None] | None):
        self.timings: dict[str, float] = {}
        self.callback = callback

    @contextmanager
    def stage(self, name: str):
        if self.callback:
            self.callback(name)
        t0 = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - t0, 3)
        log.info("%s: %.1f s", name, self.timings[name])


def data_hash(spectra: SpectrumSet) -> str:
    """sha256 of the flux bytes and labels: identifies the exact data a result came from
    (:func:`agnlens.models.persistence.training_data_hash`, the hash a model records)."""
    from agnlens.models.persistence import training_data_hash

    return training_data_hash(spectra.flux, spectra.labels)


def versions() -> dict:
    """Versions of agnlens and the libraries that shape its numbers."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("agnlens", "numpy", "scipy", "scikit-learn", "openTSNE", "astropy", "zarr", "dask", "matplotlib"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def run_study(
    out: str | Path,
    *,
    spectra: SpectrumSet | None = None,
    n: int = 3346,
    seed: int = 0,
    grid: str = "paper",
    n_random_saliency: int = 30,
    perplexity: float = 50.0,
    on_stage: Callable[[str], None] | None = None,
    report: bool = True,
    real: SpectrumSet | None = None,
    real_measure: SpectrumSet | None = None,
    real_source: str = "",
    figure_format: str = "png",
    dpi: float | None = None,
) -> StudyResult:
    """Run the study and write the results folder ``out``.

    The study is composed of the library's stages: simulate → train (both tasks) →
    :func:`agnlens.stages.classify` of every spectrum (with every applicability check) →
    :func:`agnlens.stages.explain` of the misclassified and a random sample of the test spectra →
    measurements, faithfulness, t-SNE → :func:`agnlens.stages.report`. Every file goes through
    :class:`~agnlens.results.ResultsFolder`.

    Parameters
    ----------
    out : path-like
        Results folder (created; files inside are replaced atomically).
    spectra : SpectrumSet, optional
        Labelled spectra to study; default: the built-in simulated sample of ``n`` spectra.
    n, seed, grid
        Size, seed and grid of the simulated sample; ``seed`` also fixes the split, the tuning,
        the random saliency sample and t-SNE.
    n_random_saliency : int
        Random test spectra explained in addition to every misclassified one.
    perplexity : float
        t-SNE perplexity (50 as in the study).
    on_stage : callable, optional
        Called with each stage's name as it starts (the CLI drives a progress bar with it).
    report : bool
        Build ``out/report.html`` at the end.
    real : SpectrumSet, optional
        Labelled real spectra on the study's grid, classified, measured and explained beside the
        study (:func:`agnlens.study_real.real_section`, the report's real-data section). When the
        studied ``spectra`` are themselves real, their test split is used.
    real_measure : SpectrumSet, optional
        The same real spectra on the ``balmer`` grid, for the Hα measurements.
    real_source : str
        Where the real spectra came from (shown in the report).
    figure_format : {"png", "pdf", "svg"}
        Format of the figures; a vector format is written beside each PNG (the report embeds
        the PNGs).
    dpi : float, optional
        Resolution of the PNGs (default :data:`agnlens.plot.save.DPI`).
    """
    from agnlens.stages import classify

    style: dict[str, Any] = {"format": check_format(figure_format), "dpi": check_dpi(DPI if dpi is None else dpi)}
    out = Path(out)
    folder = ResultsFolder(out)
    timer = _Timer(on_stage)
    t_start = time.perf_counter()

    with timer.stage("simulate"):
        if spectra is None:
            from agnlens.simulate import simulate_set

            spectra = simulate_set(n, seed=seed, grid=grid)
        scored = np.isin(spectra.labels, CLASSES)
        if not np.all(scored):
            log.info("leaving out %d spectra whose label is not a class", int((~scored).sum()))
            spectra = spectra[scored]
    y = spectra.labels
    metrics: dict = {
        "dataset": {
            "n_spectra": len(spectra),
            "counts": {c: int((y == c).sum()) for c in CLASSES},
            "simulated": spectra.simulated,
            "grid": spectra.grid.describe(),
            "seed": seed,
            "data_hash": data_hash(spectra),
        },
    }
    models, parts = _train(spectra, folder, metrics, timer, seed)
    model = models["multiclass"]
    test = parts["test"]

    with timer.stage("classify"):
        judged = classify(model, spectra)  # the one door: every applicability check, the one schema
        split = np.full(len(spectra), "", dtype=object)
        for name, idx in parts.items():
            split[idx] = name
        predictions = judged.assign(split=split)
        predicted = judged["predicted_label"].to_numpy(dtype=str)
        metrics["multiclass"]["applicability"] = _applicability_counts(judged)
        wrong = test[predicted[test] != y[test]]
        right = np.setdiff1d(test, wrong)
        rng = np.random.default_rng(seed)
        random_pick = np.sort(rng.choice(right, size=min(n_random_saliency, right.size), replace=False))
        explained = np.concatenate([wrong, random_pick])
        reasons = ["misclassified"] * len(wrong) + ["random"] * len(random_pick)

    with timer.stage("saliency"):
        explanation = _explain(model, spectra[explained], folder, reasons, style)
        sal = explanation.saliency
        figure_paths = [folder.saliency_figure_name(s, i) for i, s in enumerate(sal.spec_id)]

    with timer.stage("measure"):
        metrics["saliency"] = _measure(model, spectra[explained], predicted[explained], explanation, folder,
                                       style, seed)
        metrics["saliency"] |= {"n_misclassified": int(len(wrong)), "n_random": int(len(random_pick))}

    with timer.stage("lines"):
        from agnlens.explain.curves import faithfulness
        from agnlens.plot.saliency import plot_faithfulness

        train_rows = parts["train"]
        type2_mean = np.asarray(spectra.flux, dtype=np.float64)[train_rows][y[train_rows] == "type2"].mean(axis=0)
        faith = faithfulness(model, spectra[explained], baseline_spectra=type2_mean, seed=seed)
        write_csv(folder.faithfulness, faith.table)
        save_figure(plot_faithfulness(faith).figure, folder.figure("faithfulness"), **style)
        metrics["saliency"]["faithfulness_ranking"] = list(faith.ranking)

    with timer.stage("embedding"):
        misclassified = np.zeros(len(y), bool)
        misclassified[wrong] = True
        metrics["embedding"] = _embedding(spectra, predictions, explained, figure_paths, misclassified, folder,
                                          perplexity, seed, style)
        write_csv(folder.predictions, predictions)
        _figures_confusion(folder, metrics, spectra.simulated, style)

    metrics["multiclass"]["intermediate_by_subtype"] = _by_subtype(spectra, test, predicted)
    if real is not None or not spectra.simulated:
        from agnlens.study_real import real_section

        with timer.stage("real"):
            own = real is None
            metrics["real"] = jsonable(real_section(
                out, spectra[test] if real is None else real, model, measure_spectra=None if own else real_measure,
                seed=seed, source=("the test split of the studied real spectra" if own else real_source),
                figure_format=style["format"], dpi=style["dpi"],
            ))
    metrics["versions"] = versions()
    metrics["timings_s"] = dict(timer.timings)
    metrics["timings_s"]["total"] = round(time.perf_counter() - t_start, 3)
    write_json(folder.metrics, metrics)

    report_path = None
    if report:
        from agnlens.stages import report as build_report

        with timer.stage("report"):
            report_path = build_report(folder)
        metrics["timings_s"]["report"] = timer.timings["report"]
        metrics["timings_s"]["total"] = round(time.perf_counter() - t_start, 3)
        write_json(folder.metrics, metrics)
    return StudyResult(out=out, metrics=metrics, report=report_path, timings=metrics["timings_s"])


def _train(spectra: SpectrumSet, folder: ResultsFolder, metrics: dict, timer: _Timer,
           seed: int) -> tuple[dict, dict]:
    """Tune, test and save the model of each task (``tuning_<task>.csv``, ``models/<task>.skops``);
    fills ``metrics[task]`` and ``metrics["split"]``. Returns the models and the three-class split."""
    from agnlens.models.persistence import file_sha256, save_model
    from agnlens.models.tuning import train

    models, splits = {}, {}
    for task in TASK_CLASSES:
        with timer.stage(f"tune_{task}"):
            result = train(spectra, task=task, seed=seed)
            models[task], splits[task] = result.model, result.split
            write_csv(folder.tuning(task), result.tuning.table)
            metrics[task] = {
                "classes": list(result.model.classes_),
                "best_params": jsonable(result.tuning.best_params),
                "validation": result.validation,
                "test": result.test,
                "n": result.metadata["split_sizes"],
                "tuning_s": result.tuning.tuning_s,
            }
            model_path = save_model(result.model, folder.model(task), metadata=result.metadata)
            metrics[task]["model_sha256"] = file_sha256(model_path)  # provenance: pin it with --model-sha256
    parts = splits["multiclass"]
    metrics["split"] = {name: int(len(idx)) for name, idx in parts.items()} | {"seed": seed}
    return models, parts


def _explain(model, spectra: SpectrumSet, folder: ResultsFolder, reasons: list[str], style: dict):
    """:func:`agnlens.stages.explain` of the explained spectra with the exact gradient (the maps, line
    table, centre vs wings), their figures titled with why each was picked (misclassified, random).

    The figures are the explain stage's but its gallery (which the study's report does not show and
    which costs as much as a third of the saliency figures)."""
    from agnlens.models.applicability import reason
    from agnlens.plot.saliency import plot_centre_wings, plot_line_table
    from agnlens.stages import explain
    from agnlens.stages.explanations import write_saliency_figures

    result = explain(model, spectra, folder, method="gradient", max_figures=0, figure_format=style["format"],
                     dpi=style["dpi"])
    result.saliency.save(folder.saliency, reason=reasons)  # the study's reasons, not "input"
    notes = [f"not applicable: {reason(f)}" if f else None for f in result.flags]
    write_saliency_figures(result.saliency, folder, notes=notes, figure_format=style["format"], dpi=style["dpi"])
    save_figure(plot_line_table(result.line_table).figure, folder.figure("line_table"), **style)
    cws = [c for c in result.centre_wings if len(c.table)]  # a line without a broad-line spectrum: no panel
    if cws:
        save_figure(plot_centre_wings(cws if len(cws) > 1 else cws[0]).figure, folder.figure("centre_wings"), **style)
    return result


def _measure(model, spectra: SpectrumSet, predicted: np.ndarray, explanation, folder: ResultsFolder, style: dict,
             seed: int) -> dict:
    """The physics baseline beside every explained prediction (``measurements.csv``), centre vs wings
    with each object's widths and its null test, the class-averaged saliency; the ``saliency`` entry
    of ``metrics.json``."""
    from agnlens.explain.gradient import verify
    from agnlens.explain.wingtest import centre_wings_test
    from agnlens.models.baseline import measure
    from agnlens.plot.spectra import plot_class_saliency

    sal = explanation.saliency
    p = sal.p_target
    rows = np.argsort(-np.minimum(p, 1.0 - p), kind="stable")[: min(10, p.size)]  # the least certain
    check = verify(model, np.asarray(spectra.flux, dtype=np.float64)[rows], target=sal.target_index[rows])
    measured = measure(spectra, predicted)
    write_csv(folder.measurements, measured)
    cwt = centre_wings_test(sal, measured, seed=seed)
    write_csv(folder.centre_wings_test, cwt.table)
    save_figure(plot_class_saliency(sal).figure, folder.figure("class_saliency"), **style)
    cws = {c.line: c for c in explanation.centre_wings}
    known = measured["agrees_with_baseline"].dropna()
    return {
        "n_maps": len(sal),
        "method": sal.method,
        "target": "predicted class",
        "max_rel_error_vs_finite_differences": float(check["max_rel_error"]),
        "mean_rel_error_vs_finite_differences": float(check["mean_rel_error"]),
        "centre_wings": jsonable(cws["Hbeta"].summary) if "Hbeta" in cws else None,
        "centre_wings_by_line": {name: jsonable(c.summary) for name, c in cws.items()},
        "centre_wings_test": jsonable(cwt.summary),
        "baseline_agreement": {"n": int(len(measured)), "n_compared": int(len(known)), "n_agree": int(known.sum())},
    }


def _applicability_counts(judged: pd.DataFrame) -> dict:
    """How many predictions :func:`agnlens.stages.classify` judged applicable, and each flag's count."""
    flags = judged["flags"].fillna("").astype(str)
    counts: dict[str, int] = {}
    for f in flags:
        for name in filter(None, f.split(";")):
            counts[name] = counts.get(name, 0) + 1
    return {"n": int(len(judged)), "n_applicable": int(judged["applicable"].astype(bool).sum()),
            "flags": dict(sorted(counts.items()))}


def _embedding(spectra: SpectrumSet, predictions: pd.DataFrame, explained: np.ndarray, figure_paths: list[str],
               misclassified: np.ndarray, folder: ResultsFolder, perplexity: float, seed: int, style: dict) -> dict:
    """The t-SNE map of every spectrum (``embedding.csv``, ``figures/tsne.png``, ``figures/tsne_physics.png``);
    the ``embedding`` entry of ``metrics.json``."""
    from agnlens.embed import tsne
    from agnlens.plot.embedding import plot_embedding

    X = np.asarray(spectra.flux, dtype=np.float64)
    y = spectra.labels
    if perplexity >= (len(y) - 1) / 3:  # openTSNE's limit: a small sample gets a smaller one
        perplexity = max(1.0, float(np.floor((len(y) - 1) / 3 - 1)))
        log.info("t-SNE perplexity lowered to %g for %d spectra", perplexity, len(y))
    emb = tsne(X, perplexity=perplexity, seed=seed)
    has_sal = np.zeros(len(y), bool)
    has_sal[explained] = True
    saliency_figure = np.full(len(y), "", dtype=object)
    saliency_figure[explained] = figure_paths
    pcols = [c for c in predictions.columns if c.startswith("p_") and not c.endswith("_err")]
    embedding = predictions[["spec_id", "label", "split", "predicted_label", *pcols]].assign(
        x=emb.coords[:, 0], y=emb.coords[:, 1], misclassified=misclassified, has_saliency=has_sal,
        saliency_figure=saliency_figure,
    )
    write_csv(folder.embedding, embedding)
    predicted = predictions["predicted_label"].to_numpy(dtype=str)
    ax = plot_embedding(emb.coords, y, predicted=predicted, misclassified=misclassified, explained=has_sal,
                        simulated=spectra.simulated)
    save_figure(ax.figure, folder.figure("tsne"), **style)
    _figure_tsne_physics(folder, emb.coords, spectra, style)
    return {"knn_accuracy": float(emb.knn_accuracy(y)), "perplexity": perplexity, "method": emb.method_name,
            "trustworthiness": float(emb.trustworthiness(X, 10)), "n": int(len(y))}


def _figures_confusion(folder: ResultsFolder, metrics: dict, simulated: bool, style: dict) -> None:
    from agnlens.plot.metrics import plot_confusion

    tag = " (simulated)" if simulated else ""
    for task in TASK_CLASSES:
        ax = plot_confusion(np.asarray(metrics[task]["test"]["confusion_matrix"]), metrics[task]["classes"],
                            title=f"{task}: test set{tag}")
        save_figure(ax.figure, folder.figure(f"confusion_{task}"), **style)


def _by_subtype(spectra: SpectrumSet, test: np.ndarray, predicted: np.ndarray) -> dict:
    """Predictions of the test intermediates by their (simulated or catalogued) subtype."""
    if "subtype" not in spectra.meta:
        return {}
    sub = spectra.meta["subtype"].astype(str).to_numpy()[test]
    inter = spectra.labels[test] == "intermediate"
    out = {}
    for st in sorted(set(sub[inter])):
        sel = inter & (sub == st)
        out[st] = {c: int((predicted[test][sel] == c).sum()) for c in CLASSES}
    return out


#: Quantities the t-SNE map is coloured by, where the spectra's metadata has them (simulated truth).
TSNE_COLOUR_BY = {"fwhm_broad": "broad FWHM (km/s)", "oiii_hbeta_total": "[O III]/Hβ", "host_fraction": "host fraction"}


def _figure_tsne_physics(folder: ResultsFolder, coords, spectra: SpectrumSet, style: dict) -> None:
    from agnlens.plot.embedding import plot_embedding_values

    values = {name: pd.to_numeric(spectra.meta[col], errors="coerce").to_numpy(float)
              for col, name in TSNE_COLOUR_BY.items() if col in spectra.meta}
    if "broad FWHM (km/s)" in values:  # no broad line: no width
        values["broad FWHM (km/s)"] = np.where(spectra.labels == "type2", np.nan, values["broad FWHM (km/s)"])
    if "[O III]/Hβ" in values:
        values["log [O III]/Hβ"] = np.log10(np.clip(values.pop("[O III]/Hβ"), 1e-3, None))
    if values:
        save_figure(plot_embedding_values(coords, values, simulated=spectra.simulated), folder.figure("tsne_physics"),
                    **style)

