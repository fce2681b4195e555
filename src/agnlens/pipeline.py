"""The reference study end to end — what ``agnlens demo`` runs.

simulate (or load a store) → split → tune and test, two-class and three-class → exact saliency for
every misclassified test spectrum and a seeded random sample → line table, centre-vs-wings,
faithfulness → t-SNE → results folder (docs/results-layout.md) → HTML report.
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
from agnlens.results import TASKS, ResultsFolder
from agnlens.spectra import SpectrumSet

log = logging.getLogger(__name__)

CLASSES = dict(zip(TASKS, (["type1", "type2"], ["type1", "type2", "intermediate"])))


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
    from agnlens.embed import tsne
    from agnlens.explain.faithfulness import faithfulness
    from agnlens.explain.gradient import verify
    from agnlens.explain.linestats import centre_wings, covered_lines, line_table
    from agnlens.explain.wingtest import centre_wings_test
    from agnlens.models.baseline import measure
    from agnlens.models.persistence import file_sha256, save_model
    from agnlens.models.tuning import train
    from agnlens.plot.save import DPI, check_dpi, check_format
    from agnlens.stages.explain import explain_saliency, write_saliency_figures

    fig_format, fig_dpi = check_format(figure_format), check_dpi(DPI if dpi is None else dpi)
    style: dict[str, Any] = {"format": fig_format, "dpi": fig_dpi}
    out = Path(out)
    folder = ResultsFolder(out)
    folder.model(TASKS[0]).parent.mkdir(parents=True, exist_ok=True)
    folder.saliency_figures.mkdir(parents=True, exist_ok=True)
    timer = _Timer(on_stage)
    t_start = time.perf_counter()

    with timer.stage("simulate"):
        if spectra is None:
            from agnlens.simulate import simulate_set

            spectra = simulate_set(n, seed=seed, grid=grid)
        scored = np.isin(spectra.labels, CLASSES["multiclass"])
        if not np.all(scored):
            log.info("leaving out %d spectra whose label is not a class", int((~scored).sum()))
            spectra = spectra[scored]
    X = np.asarray(spectra.flux, dtype=np.float64)
    y = spectra.labels
    simulated = spectra.simulated

    metrics: dict = {
        "dataset": {
            "n_spectra": len(spectra),
            "counts": {c: int((y == c).sum()) for c in CLASSES["multiclass"]},
            "simulated": simulated,
            "grid": spectra.grid.describe(),
            "seed": seed,
            "data_hash": data_hash(spectra),
        },
    }
    models, splits = {}, {}
    for task in CLASSES:
        with timer.stage(f"tune_{task}"):
            result = train(spectra, task=task, seed=seed)
            models[task], splits[task] = result.model, result.split
            _write_csv(result.tuning.table, folder.tuning(task))
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
    predictions = pd.DataFrame({"spec_id": spectra.spec_id, "label": y, "split": ""})
    for name, idx in parts.items():
        predictions.loc[idx, "split"] = name

    model = models["multiclass"]
    with timer.stage("classify"):
        proba = model.predict_proba(X)
        predicted = model.classes_[np.argmax(proba, axis=1)]
        predictions["predicted_label"] = predicted
        for k, c in enumerate(model.classes_):
            predictions[f"p_{c}"] = proba[:, k]
        test = parts["test"]
        wrong = test[predicted[test] != y[test]]
        rng = np.random.default_rng(seed)
        right = np.setdiff1d(test, wrong)
        random_pick = np.sort(rng.choice(right, size=min(n_random_saliency, right.size), replace=False))
        explained = np.concatenate([wrong, random_pick])
        reasons = ["misclassified"] * len(wrong) + ["random"] * len(random_pick)

    with timer.stage("saliency"):
        sal = explain_saliency(model, spectra[explained], method="gradient")
        p = sal.p_target
        rows = np.argsort(-np.minimum(p, 1.0 - p), kind="stable")[: min(10, p.size)]
        check = verify(model, X[explained[rows]], target=sal.target_index[rows])
        sal.save(folder.saliency, reason=reasons)
        figure_paths = write_saliency_figures(sal, folder, figure_format=fig_format, dpi=fig_dpi)

    with timer.stage("measure"):
        # the physics beside every explained prediction (its broad widths decide who has wings, below), and centre
        # vs wings with each object's widths
        measured = measure(spectra[explained], predicted[explained])
        _write_csv(measured, folder.measurements)
        cwt = centre_wings_test(sal, measured, seed=seed)
        _write_csv(cwt.table, folder.centre_wings_test)
        from agnlens.plot.spectra import plot_class_saliency

        _save_figure(plot_class_saliency(sal).figure, folder.figure("class_saliency"), style)

    with timer.stage("lines"):
        type2_mean = X[parts["train"]][y[parts["train"]] == "type2"].mean(axis=0)
        table = line_table(sal)
        _write_csv(table, folder.line_table)
        cws = {name: centre_wings(sal, name, widths=measured) for name in covered_lines(sal)}
        cw = cws["Hbeta"]
        _write_csv(pd.concat([c.table for c in cws.values()], ignore_index=True), folder.centre_wings)
        faith = faithfulness(model, spectra[explained], baseline_spectra=type2_mean, seed=seed)
        _write_csv(faith.table, folder.faithfulness)
        _figures_lines(folder, table, cw, faith, style)

    with timer.stage("embedding"):
        if perplexity >= (len(y) - 1) / 3:  # openTSNE's limit: a small sample gets a smaller one
            perplexity = max(1.0, float(np.floor((len(y) - 1) / 3 - 1)))
            log.info("t-SNE perplexity lowered to %g for %d spectra", perplexity, len(y))
        emb = tsne(X, perplexity=perplexity, seed=seed)
        knn = float(emb.knn_accuracy(y))
        trust = float(emb.trustworthiness(X, 10))
        misclassified = np.zeros(len(y), bool)
        misclassified[wrong] = True
        has_sal = np.zeros(len(y), bool)
        has_sal[explained] = True
        saliency_figure = np.full(len(y), "", dtype=object)
        saliency_figure[explained] = figure_paths
        embedding = predictions.assign(
            x=emb.coords[:, 0], y=emb.coords[:, 1], misclassified=misclassified,
            has_saliency=has_sal, saliency_figure=saliency_figure,
        )
        _write_csv(embedding, folder.embedding)
        _write_csv(predictions, folder.predictions)
        _figures_results(folder, metrics, emb, y, predicted, misclassified, has_sal, simulated, style)
        _figure_tsne_physics(folder, emb.coords, spectra, simulated, style)

    metrics["saliency"] = {
        "n_maps": int(explained.size),
        "method": "gradient",
        "target": "predicted class",
        "n_misclassified": int(len(wrong)),
        "n_random": int(len(random_pick)),
        "max_rel_error_vs_finite_differences": float(check["max_rel_error"]),
        "mean_rel_error_vs_finite_differences": float(check["mean_rel_error"]),
        "centre_wings": jsonable(cw.summary),
        "centre_wings_by_line": {name: jsonable(c.summary) for name, c in cws.items()},
        "centre_wings_test": jsonable(cwt.summary),
        "baseline_agreement": _agreement(measured),
        "faithfulness_ranking": list(faith.ranking),
    }
    metrics["embedding"] = {
        "knn_accuracy": knn,
        "perplexity": perplexity,
        "method": emb.method_name,
        "trustworthiness": trust,
        "n": int(len(y)),
    }
    metrics["multiclass"]["intermediate_by_subtype"] = _by_subtype(spectra, test, predicted)
    if real is not None or not simulated:
        from agnlens.study_real import real_section

        with timer.stage("real"):
            own = real is None
            metrics["real"] = jsonable(real_section(
                out, spectra[test] if real is None else real, model, measure_spectra=None if own else real_measure,
                seed=seed, source=("the test split of the studied real spectra" if own else real_source),
                figure_format=fig_format, dpi=fig_dpi,
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


def _figures_lines(folder: ResultsFolder, table, cw, faith, style: dict) -> None:
    from agnlens.plot.saliency import plot_centre_wings, plot_faithfulness, plot_line_table

    _save_figure(plot_line_table(table).figure, folder.figure("line_table"), style)
    _save_figure(plot_centre_wings(cw).figure, folder.figure("centre_wings"), style)
    _save_figure(plot_faithfulness(faith).figure, folder.figure("faithfulness"), style)


def _figures_results(folder: ResultsFolder, metrics, emb, y, predicted, misclassified, has_sal, simulated,
                     style: dict) -> None:
    from agnlens.plot.embedding import plot_embedding
    from agnlens.plot.metrics import plot_confusion

    tag = " (simulated)" if simulated else ""
    for task in CLASSES:
        ax = plot_confusion(
            np.asarray(metrics[task]["test"]["confusion_matrix"]),
            metrics[task]["classes"],
            title=f"{task}: test set{tag}",
        )
        _save_figure(ax.figure, folder.figure(f"confusion_{task}"), style)
    ax = plot_embedding(
        emb.coords, y, predicted=predicted, misclassified=misclassified, explained=has_sal,
        simulated=simulated,
    )
    _save_figure(ax.figure, folder.figure("tsne"), style)


def _agreement(measured: pd.DataFrame) -> dict:
    known = measured["agrees_with_baseline"].dropna()
    return {"n": int(len(measured)), "n_compared": int(len(known)), "n_agree": int(known.sum())}


def _by_subtype(spectra: SpectrumSet, test: np.ndarray, predicted: np.ndarray) -> dict:
    """Predictions of the test intermediates by their (simulated or catalogued) subtype."""
    if "subtype" not in spectra.meta:
        return {}
    sub = spectra.meta["subtype"].astype(str).to_numpy()[test]
    inter = spectra.labels[test] == "intermediate"
    out = {}
    for st in sorted(set(sub[inter])):
        sel = inter & (sub == st)
        out[st] = {c: int((predicted[test][sel] == c).sum()) for c in CLASSES["multiclass"]}
    return out


#: Quantities the t-SNE map is coloured by, where the spectra's metadata has them (simulated truth).
TSNE_COLOUR_BY = {"fwhm_broad": "broad FWHM (km/s)", "oiii_hbeta_total": "[O III]/Hβ", "host_fraction": "host fraction"}


def _figure_tsne_physics(folder: ResultsFolder, coords, spectra: SpectrumSet, simulated: bool, style: dict) -> None:
    from agnlens.plot.embedding import plot_embedding_values

    values = {name: pd.to_numeric(spectra.meta[col], errors="coerce").to_numpy(float)
              for col, name in TSNE_COLOUR_BY.items() if col in spectra.meta}
    if "broad FWHM (km/s)" in values:  # no broad line: no width
        values["broad FWHM (km/s)"] = np.where(spectra.labels == "type2", np.nan, values["broad FWHM (km/s)"])
    if "[O III]/Hβ" in values:
        values["log [O III]/Hβ"] = np.log10(np.clip(values.pop("[O III]/Hβ"), 1e-3, None))
    if values:
        _save_figure(plot_embedding_values(coords, values, simulated=simulated), folder.figure("tsne_physics"), style)


def _save_figure(fig, path: Path, style: dict) -> None:
    # the figures lay themselves out (constrained layout): a "tight" pass would draw each twice
    from agnlens.plot.save import save_figure

    save_figure(fig, path, **style)


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    write_csv(path, frame)

