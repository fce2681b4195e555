"""The ``explain`` stage: saliency maps of spectra, the line tables, the predictions with their
applicability, their place on a t-SNE map and the figures, written into a results folder.

:func:`explain_set` works on spectra in memory (what ``agnlens explain`` runs, through the door
:func:`agnlens.stages.explain` in :mod:`agnlens.stages.verbs`); :func:`explain_store`
computes the maps of every spectrum of a store chunk by chunk on an executor (survey scale, no
figures). Both compute a chunk's maps with :func:`explain_chunk`'s call of
:func:`agnlens.explain.attribution.saliency`, so the maps of a spectrum agree on either path within
the tolerances of the reproducibility contract (docs/reproducing.md; bitwise in one process for the
same chunk size and BLAS threads).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from agnlens.explain.attribution import DEFAULT_METHOD
from agnlens.results import ResultsFolder
from agnlens.spectra import SpectrumSet
from agnlens.stages.executor import Executor, as_executor

if TYPE_CHECKING:
    from agnlens.explain.result import Saliency

#: Spectra whose line contributions an explanation made batch by batch keeps in memory beyond those
#: with a figure (the ones ``agnlens explain`` puts in words); the whole table is written.
DESCRIBED = 10
#: Spectra with a figure unless said otherwise (``max_figures``).
MAX_FIGURES = 50

@dataclass
class Explanation:
    """What :func:`explain` wrote, and the results it wrote them from.

    Attributes
    ----------
    saliency : Saliency
        The maps, shape (n_spectra, n_pixels).
    line_table : DataFrame
        :func:`agnlens.explain.linestats.line_table` of the maps.
    centre_wings : list of CentreWings
        Centre vs wings of every broad line the grid covers, on the spectra with a broad line
        (``CentreWings.excluded`` counts the others).
    judged : DataFrame
        :func:`agnlens.stages.classify` of the spectra (``applicable``, ``flags``...).
    folder : ResultsFolder
    n_figures : int
        Spectra with a figure in ``figures/saliency/``.
    contributions : DataFrame or None
        :func:`agnlens.explain.contributions.line_contributions` of the maps (written as
        ``line_contributions.csv``); None for a method whose map does not add up to the decision.
    model : fitted model, optional
        The model explained.
    spectra : SpectrumSet, optional
        The spectra explained (on the model's grid); None when they were explained batch by batch
        (:class:`agnlens.stages.explain_batches.BatchExplanation`: then ``saliency`` holds memory
        maps of the saliency folder, and ``contributions`` the rows of the first spectra only).
    grid : Grid, optional
        The grid of the spectra.
    colour_limit : float, optional
        The colour limit the figures share (default :func:`agnlens.plot.saliency.shared_limit` of
        the maps).
    """

    saliency: Saliency
    line_table: pd.DataFrame
    centre_wings: list = field(default_factory=list)
    judged: pd.DataFrame | None = None
    folder: ResultsFolder | None = None
    n_figures: int = 0
    contributions: pd.DataFrame | None = None
    model: Any = None
    spectra: SpectrumSet | None = None
    grid: Any = None
    colour_limit: float | None = None

    def __post_init__(self) -> None:
        if self.grid is None and self.spectra is not None:
            self.grid = self.spectra.grid

    @property
    def limit(self) -> float:
        """The colour limit of the figures: :attr:`colour_limit`, or the shared limit of the maps."""
        from agnlens.plot.saliency import shared_limit

        if self.colour_limit is None:
            self.colour_limit = shared_limit(self.saliency.values)
        return self.colour_limit

    @property
    def flags(self) -> np.ndarray:
        """The ``flags`` of every explained spectrum ("" when its prediction is applicable)."""
        if self.judged is None:
            return np.full(len(self.saliency.spec_id), "", dtype=object)
        return self.judged["flags"].fillna("").astype(str).to_numpy()

    def describe(self, i: int) -> str:
        """The largest line contributions of spectrum ``i`` in words
        (:func:`agnlens.explain.contributions.describe_contributions`; "" without contributions)."""
        from agnlens.explain.contributions import describe_contributions

        if self.contributions is None:
            return ""
        spec_id = self.saliency.spec_id[i]
        table = self.contributions
        written = None if self.folder is None else self.folder.line_contributions
        if not (table["spec_id"] == spec_id).any() and written is not None and written.is_file():
            table = _rows_of(written, spec_id)  # explained batch by batch: not kept in memory
        return describe_contributions(table, spec_id)

    def verify(self, n_spectra: int = 10) -> pd.DataFrame:
        """The exact gradient against central finite differences of the model's own ``predict_proba``
        (:func:`agnlens.explain.gradient.verify`), spectrum by spectrum on the ``n_spectra`` least
        saturated spectra (p_target farthest from 0 and 1), in their order; at the spectra, or at
        their float32 copies in the saliency folder when they were explained batch by batch.

        Returns
        -------
        DataFrame
            ``spec_id``, ``max_rel_error`` (against the largest |finite difference| of the
            spectrum's own map), ``max_abs_error`` and ``collapsed`` (flag ``kernel-collapse``: the
            map is the derivative of a constant, to be reported rather than judged).
        """
        from agnlens.explain.gradient import verify

        if self.model is None:
            raise ValueError("verify: the Explanation does not hold its model")
        sal, flags = self.saliency, self.flags
        flux = sal.flux if self.spectra is None else self.spectra.flux
        p = sal.p_target
        rows = np.sort(np.argsort(-np.minimum(p, 1.0 - p), kind="stable")[:min(n_spectra, len(sal))])
        checks = [verify(self.model, np.asarray(flux[[i]], dtype=np.float64), target=sal.target_index[[i]])
                  for i in rows]
        return pd.DataFrame({
            "spec_id": [sal.spec_id[i] for i in rows],
            "max_rel_error": [c["max_rel_error"] for c in checks],
            "max_abs_error": [c["max_abs_error"] for c in checks],
            "collapsed": ["kernel-collapse" in str(flags[i]) for i in rows],
        })


def _rows_of(path: Path, spec_id: str) -> pd.DataFrame:
    """The rows of one spectrum in a written line-contributions table, read chunk by chunk."""
    parts = [c[c["spec_id"] == spec_id] for c in pd.read_csv(path, dtype={"spec_id": str}, chunksize=100_000)]
    return pd.concat(parts, ignore_index=True)


def explain_saliency(model, spectra: SpectrumSet, *, method: str = DEFAULT_METHOD, target=None, executor=None,
                     **method_options):
    """Saliency maps of ``spectra``, chunk by chunk on ``executor`` (in this process).

    Returns
    -------
    Saliency
        Values of shape (n_spectra, n_pixels).
    """
    from agnlens.explain.attribution import Saliency, saliency

    def one(chunk):
        return saliency(model, chunk, method=method, target=target, **method_options)

    return Saliency.concat(as_executor(executor).map(one, spectra, desc="explain"))


def explain_set(
    model,
    spectra,
    folder: ResultsFolder | str | os.PathLike,
    *,
    method: str = DEFAULT_METHOD,
    target=None,
    executor: Executor | None = None,
    max_figures: int = MAX_FIGURES,
    panels: bool = False,
    metadata: dict | None = None,
    figure_format: str = "png",
    dpi: float | None = None,
):
    """:func:`agnlens.stages.explain` of spectra in memory on ``model``'s grid (same parameters)."""
    from agnlens.atomic import write_csv

    if not isinstance(spectra, SpectrumSet):
        from agnlens.io.coerce import as_spectrum_set

        spectra = as_spectrum_set(spectra, n_pixels=getattr(model, "n_features_in_", None))
    from agnlens.explain.contributions import line_contributions
    from agnlens.explain.linestats import centre_wings, covered_lines, line_table
    from agnlens.stages.predictions import write_predictions

    figures = check_figures(max_figures, figure_format, dpi)
    folder = folder if isinstance(folder, ResultsFolder) else ResultsFolder(folder)
    executor = as_executor(executor)
    judged, widths = judge(model, spectra, executor)
    write_predictions(folder.predictions, judged)
    if metadata is not None:
        from agnlens.stages.maps import write_map

        write_map(folder, metadata, spectra, judged)
    sal = explain_saliency(model, spectra, method=method, target=target, executor=executor)
    sal.save(folder.saliency, reason=["input"] * len(sal))  # the user's spectra, not a sample
    table = line_table(sal)
    write_csv(folder.line_table, table)
    contributions = line_contributions(sal) if sal.method == "integrated-gradients" else None
    if contributions is not None:
        write_csv(folder.line_contributions, contributions, float_format="%.6g")
    cws = [centre_wings(sal, name, widths=widths) for name in covered_lines(sal)]
    if any(len(c.table) for c in cws):
        write_csv(folder.centre_wings, pd.concat([c.table for c in cws], ignore_index=True))
    result = Explanation(sal, table, cws, judged, folder, min(int(max_figures), len(sal)), contributions, model,
                         spectra)
    if result.n_figures:
        shown = spectra[np.arange(result.n_figures)]
        per_class = ({str(c): explain_saliency(model, shown, method=method, target=k, executor=executor)
                      for k, c in enumerate(model.classes_)} if panels else None)
        explain_figures(result, progress=executor.progress, panels=per_class, **figures)
    return result


def judge(model, spectra: SpectrumSet, executor: Executor) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """:func:`agnlens.stages.classify` of ``spectra`` and the physics baseline's measurements.

    The spectra are measured (:func:`agnlens.models.baseline.measure`) when their grid covers Hβ;
    when it covers Hα too, classify takes these measurements instead of making them again, and they
    stand beside each row as ``agnlens classify --measure`` puts them.

    Returns
    -------
    judged : DataFrame
    widths : DataFrame or None
        The measurements (None when the grid does not reach Hβ).
    """
    from agnlens.models.baseline import measure
    from agnlens.models.linefit import HALPHA, HBETA, covers
    from agnlens.stages.predictions import classify_set, join_measurements

    wl = np.asarray(spectra.wavelength, dtype=float)
    widths = measure(spectra) if len(spectra) and covers(wl, HBETA) else None
    both = widths is not None and covers(wl, HALPHA)
    judged = classify_set(model, spectra, executor=executor, measurements=widths if both else None)
    return (join_measurements(judged, widths) if both else judged), widths


def check_figures(max_figures, figure_format: str = "png", dpi: float | None = None) -> dict:
    """The figure options of :func:`agnlens.stages.explain` checked before any work (errors say
    what is allowed): ``max_figures`` an int ≥ 0 (None: the default); returns
    :func:`_figure_options`."""
    if max_figures is not None and (isinstance(max_figures, bool) or not isinstance(max_figures, (int, np.integer))
                                    or max_figures < 0):
        raise ValueError(f"max_figures must be 0 or more, got {max_figures!r}")
    return _figure_options(figure_format, dpi)


def _figure_options(figure_format: str, dpi: float | None) -> dict:
    """``figure_format`` and ``dpi`` checked (errors say what is allowed), ``dpi`` defaulted."""
    from agnlens.plot.save import DPI, check_dpi, check_format

    return {"figure_format": check_format(figure_format), "dpi": check_dpi(DPI if dpi is None else dpi)}


def write_saliency_figures(sal, folder: ResultsFolder, rows=None, *, notes=None, progress: bool = False,
                           figure_format: str = "png", dpi: float | None = None,
                           vmax: float | None = None) -> list[str]:
    """Write the saliency figure of each row of ``sal`` (default all) into ``folder``; returns the
    PNGs' names relative to the folder.

    The PNGs are drawn as frames of one figure (:mod:`agnlens.plot.saliency_frames`; a noted map
    gets a fresh figure); a vector ``figure_format`` is drawn figure by figure beside them. All
    share one colour scale: ``vmax``, by default :func:`agnlens.plot.saliency.shared_limit` of every
    map of ``sal``.
    """
    from agnlens.atomic import write_bytes
    from agnlens.plot.saliency import shared_limit
    from agnlens.plot.saliency_frames import png_bytes, saliency_images

    opts = _figure_options(figure_format, dpi)
    rows = list(range(len(sal)) if rows is None else rows)
    vmax = shared_limit(sal.values) if vmax is None else float(vmax)
    images = zip(rows, saliency_images(sal, rows, zoom=True, dpi=opts["dpi"], notes=notes, vmax=vmax,
                                       n_maps=len(sal)))
    if progress:
        from tqdm.auto import tqdm

        images = tqdm(images, total=len(rows), desc="figures", unit="figure", file=sys.stderr, leave=False)
    names = []
    for i, image in images:
        names.append(folder.saliency_figure_name(sal.spec_id[i], i))
        write_bytes(folder / names[-1], png_bytes(image, dpi=opts["dpi"]))
        if opts["figure_format"] != "png":
            _vector_figure(sal, i, folder / names[-1], vmax, None if notes is None else notes[i], opts)
    return names


def _vector_figure(sal, i: int, png: Path, vmax: float, note, opts: dict) -> None:
    """Spectrum ``i``'s figure in a vector format beside its PNG ``png`` (the same drawing)."""
    from agnlens.plot.saliency import attribution_label, shared_scale_note
    from agnlens.plot.save import save_figure

    label = f"{attribution_label(sal.method, sal.target[i])}\n{shared_scale_note(len(sal))}"
    fig = sal.plot(i, zoom=True, vmax=vmax, colorbar_label=label, note=note).figure
    save_figure(fig, png, format=opts["figure_format"], dpi=opts["dpi"], png=False)


def explain_figures(result: Explanation, *, progress: bool = False, panels: dict | None = None,
                    figure_format: str = "png", dpi: float | None = None) -> None:
    """The figures of :func:`explain` (``result.n_figures`` spectra, the gallery, the line tables)."""
    from agnlens.models.applicability import reason
    from agnlens.plot.saliency import plot_centre_wings, plot_line_table, shared_limit
    from agnlens.plot.saliency_gallery import plot_gallery, plot_saliency_panels
    from agnlens.plot.save import save_figure

    opts = _figure_options(figure_format, dpi)
    fmt, dpi = opts["figure_format"], opts["dpi"]
    sal, folder, flags = result.saliency, result.folder, result.flags
    if folder is None:
        raise ValueError("explain_figures: the Explanation has no results folder to draw into")
    notes = [f"not applicable: {reason(f)}" if f else None for f in flags]
    if not panels:
        write_saliency_figures(sal, folder, range(result.n_figures), notes=notes, progress=progress,
                               vmax=result.limit, **opts)
    else:
        rows = range(result.n_figures)
        if progress:
            from tqdm.auto import tqdm

            rows = tqdm(rows, desc="figures", unit="figure", file=sys.stderr, leave=False)
        vmax = shared_limit(np.concatenate([p.values for p in panels.values()]))
        for i in rows:
            fig = plot_saliency_panels(
                sal.wavelength, sal.flux[i], {c: p.values[i] for c, p in panels.items()}, method=sal.method,
                probabilities=sal.probabilities[i], title="\n".join(sal.figure_title(i).split("\n")[:2]),
                note=notes[i], vmax=vmax,
            )
            save_figure(fig, folder.saliency_figure(sal.spec_id[i], i), format=fmt, dpi=dpi)
    picked, why = sal.study_sample(n_random=max(0, 30 - int(sal.misclassified.sum())), seed=0)
    picked, why = picked[:30], why[:30]
    if len(picked) == len(sal):  # every input is shown: none was picked at random
        picked, why = np.arange(len(sal)), np.full(len(sal), "input")
        title = f"{len(sal)} input spectra"
    else:
        n_wrong = int((why == "misclassified").sum())
        title = (f"{n_wrong} input spectra whose catalogue label disagrees and " if n_wrong else "") + \
            f"{len(picked) - n_wrong} of {len(sal) - n_wrong} input spectra at random"
        why = np.where(why == "misclassified", "catalogue disagrees", "random pick of the inputs")
    gallery = plot_gallery(sal, [int(i) for i in picked], title=title, flags=list(flags), reasons=list(why),
                           vmax=result.limit, n_maps=len(sal))
    save_figure(gallery, folder.figure("gallery"), format=fmt, dpi=dpi)
    save_figure(plot_line_table(result.line_table).figure, folder.figure("line_table"), format=fmt, dpi=dpi)
    cws = [c for c in result.centre_wings if len(c.table)]  # a line whose every spectrum lacks wings: no panel
    if cws:
        save_figure(plot_centre_wings(cws if len(cws) > 1 else cws[0]).figure, folder.figure("centre_wings"),
                    format=fmt, dpi=dpi)


# ------------------------------------------------------------------------------ survey scale
def explain_chunk(
    chunk: SpectrumSet, model, method: str = DEFAULT_METHOD, target=None, options: dict | None = None
) -> dict:
    """Saliency maps of every spectrum of a chunk (:func:`agnlens.explain.attribution.saliency`).

    Returns
    -------
    dict
        ``saliency``: float32 array of shape (n_chunk, n_pixels); ``index``: DataFrame with
        ``spec_id, label, predicted_label, target_class, p_<class>...``.
    """
    from agnlens.explain.attribution import saliency

    sal = saliency(model, chunk, method=method, target=target, **(options or {}))
    index = pd.DataFrame(
        {
            "spec_id": chunk.spec_id,
            "label": chunk.labels,
            "predicted_label": np.asarray(sal.predicted).astype(str),
            "target_class": np.asarray(sal.target).astype(str),
        }
    )
    for j, c in enumerate(np.asarray(sal.classes).astype(str)):
        index[f"p_{c}"] = sal.probabilities[:, j]
    return {"saliency": sal.values.astype(np.float32), "index": index}


def explain_store(
    model,
    store: str | os.PathLike,
    out: str | os.PathLike,
    *,
    method: str = DEFAULT_METHOD,
    target=None,
    executor: Executor | str | None = None,
    **method_options,
) -> dict[str, Path]:
    """Saliency maps of every spectrum of a store, chunk by chunk on ``executor``; resumable.

    Parameters
    ----------
    model : fitted SpectrumSVC
        (Any model :func:`agnlens.explain.attribution.saliency` supports for ``method``.)
    store : path-like
        An agnlens store on the model's grid.
    out : path-like
        Output folder (``parts/`` while running; a rerun resumes).
    method : str, default "integrated-gradients"
        Integrated Gradients of the explained class probability from each spectrum's continuum;
        see :func:`agnlens.explain.attribution.saliency` for the others.
    target : None or class label
        None explains each spectrum's predicted class.
    executor : Executor or scheduler name, optional
        Where the chunks run (default in this process); its chunk size defaults to the store's.
    **method_options
        Passed to :func:`~agnlens.explain.attribution.saliency`.

    Returns
    -------
    dict
        ``"saliency"``: ``OUT/saliency.zarr``, a float32 Zarr array of shape (n_spectra, n_pixels)
        in store order; ``"index"``: ``OUT/index.csv`` (``spec_id, label, predicted_label,
        target_class, p_<class>...``).
    """
    from agnlens.engine import fingerprint
    from agnlens.stages.predictions import check_model

    check_model(model)
    options = dict(method_options)
    res = as_executor(executor).map_store(
        explain_chunk, store, out, args=(model, method, target, options),
        job=f"explain {method} target={target!r} {sorted(options.items())!r} {fingerprint(model)}",
        columns=("spec_id", "label"),
    )
    return {"saliency": res.outputs["saliency"], "index": res.outputs["index"]}
