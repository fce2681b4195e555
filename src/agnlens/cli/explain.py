"""``agnlens explain``: saliency maps, figures and the line table for a model and some spectra."""

from __future__ import annotations

import argparse
import sys

from agnlens.cli import _common
from agnlens.cli._common import nonnegative_int

#: ``--verify`` fails when the exact gradient differs from central finite differences of the
#: model's own ``predict_proba`` by more than this, relative to the largest |finite difference|
#: of the map. Exact gradients agree to ~1e-7 (the differences' own truncation and round-off
#: error); a wrong gradient (a missing scaler, a sign) is off by order 1.
VERIFY_TOLERANCE = 1e-4
#: ... or when the absolute error is below this (saturated probabilities, see ``_verify``).
VERIFY_ABS_TOLERANCE = 1e-9
#: Spectra checked by ``--verify`` (each costs 2 × n_pixels predictions).
VERIFY_SPECTRA = 10
#: ``--method`` choices, the default first, each with what it is (for --help).
METHODS = {
    "integrated-gradients": "Integrated Gradients of the class probability from the spectrum's own line-free "
    "continuum: differs per spectrum and adds up to p(spectrum) - p(continuum), so it sums over lines "
    "(DIR/line_contributions.csv)",
    "gradient": "the exact gradient dp/dflux (the study's map, about one prediction): for a linear model the "
    "same map, up to scale, for every spectrum of a class",
    "finite-difference": "the study's +1%% nudge of every pixel (forward differences)",
    "smoothgrad": "the mean exact gradient over 50 noisy copies",
    "occlusion": "the probability drop when 20-pixel windows are replaced by the continuum",
}


def add_parser(sub) -> None:
    p = sub.add_parser(
        "explain",
        help="saliency maps (which pixels drive the predicted type), figures and a line table",
        description="Explain a classifier's decisions: for every input spectrum, the attribution map "
        "of the predicted class's probability (or of --class) over its pixels, one figure per spectrum (the "
        "spectrum as a line, its signed attribution as a colour band beneath it, one colour scale for the "
        "run), what each line contributed, and a line-level table. Writes "
        "DIR/saliency/ (values.npy, wavelength.npy, index.csv), DIR/figures/saliency/<spec_id>.png, "
        "DIR/line_contributions.csv (per spectrum and line window: the attribution's sum, in probability), "
        "DIR/line_table.csv, DIR/centre_wings.csv (spectra with a broad line only), DIR/predictions.csv (the "
        "table of agnlens classify: predicted_label, p_<class>, applicable, flags... per spectrum; figures of "
        "not-applicable predictions say so) and, with the built-in models, DIR/embedding.csv (the spectra "
        "placed on a t-SNE map of the model's simulated training sample). `agnlens report DIR` makes a page of it. "
        "Without --model the built-in models are used (balmer grid where Hα is covered, paper "
        "otherwise); when both are used each grid's results go to DIR/grid-<name>/. Rejected inputs "
        "are reported one line each (exit status 1). Files are explained in batches, one in memory at a "
        "time. Survey scale: with --scheduler processes or tcp://HOST:PORT the Dask workers read and "
        "explain batches of the files (everything above is written, by this process); STORE inputs are "
        "explained chunk by chunk where they lie, resumably, into DIR/<store>/saliency.zarr and index.csv "
        "(no figures or line table for a store in this mode).",
        epilog="examples:\n"
        "  agnlens explain spectra/*.fits --out explained\n"
        "  agnlens explain --model demo-out/models/multiclass.skops my.zarr --out expl --class type2 --verify\n"
        "  agnlens explain --model model.skops spec-0266-51602-0001.fits --out expl --method gradient  # study's map",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common.add_model_argument(p)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="spectrum files, directories, glob patterns or a store")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--method", default="integrated-gradients", choices=list(METHODS),
                   help="attribution method (default: integrated-gradients): "
                   + "; ".join(f"{name}: {what}" for name, what in METHODS.items()))
    p.add_argument("--class", dest="target", metavar="K",
                   help="class to explain (label or index; default: the predicted class)")
    p.add_argument("--verify", action="store_true",
                   help=f"check the exact gradient against finite differences on up to {VERIFY_SPECTRA} "
                   f"spectra, each passing when its relative error is ≤ {VERIFY_TOLERANCE:g} or its absolute "
                   f"error ≤ {VERIFY_ABS_TOLERANCE:g}; collapsed spectra are reported, not failed; exit 1 "
                   "if any spectrum fails")
    p.add_argument("--max-figures", type=nonnegative_int, default=50, metavar="N",
                   help="figures for at most N spectra (default 50; 0: none)")
    p.add_argument("--panels", action="store_true",
                   help="figures with one panel per class (the saliency of every class's probability)")
    p.add_argument("--labels", metavar="CATALOG", help="label catalogue, to show true types in titles")
    _common.add_model_sha256_argument(p)
    _common.add_overwrite_argument(p, "--out folder")
    _common.add_figure_arguments(p)
    _common.add_scheduler_argument(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from agnlens.cli._common import report_rejections, unique_inputs
    from agnlens.errors import UsageError
    from agnlens.results import ResultsFolder
    from agnlens.stages import Executor, explain, resolve_models, write_provenance

    if args.max_figures < 0:
        raise UsageError(f"--max-figures must be 0 or more, got {args.max_figures}")
    args.inputs = unique_inputs("explain", args.inputs)
    model_file = None if args.model == "default" else args.model
    _common.claim_output(args, [*args.inputs, args.labels, model_file], folder=True)
    if args.overwrite:  # a run cut short must not leave the last run's outputs looking finished
        ResultsFolder(args.out).clear_explained()
    models = resolve_models(args.model, args.model_sha256)
    done = explain(models, args.inputs, args.out, method=args.method, target=args.target, max_figures=args.max_figures,
                   panels=args.panels, figure_format=args.figure_format, dpi=args.dpi, labels=args.labels,
                   executor=Executor(args.scheduler, progress=args.progress))
    if done.explanations or done.stores:
        write_provenance(done.folder.provenance, models.loaded())
    for store, out in done.stores.items():  # --scheduler: maps and index of each store
        print(f"explained {store} with {args.method} saliency: {out['saliency']} (index {out['index']})")
    if done.stores and not done.explanations and not done.rejected:
        return 0
    report_rejections("explain", done.rejected)
    if not done.explanations and not done.stores:
        print("agnlens explain: no spectrum could be used; nothing written", file=sys.stderr)
        return 1
    status = 1 if done.rejected else 0
    for result in done.explanations:
        status = max(status, _summary(args, result))
    if done.rejected:
        print(f"rejected: {len(done.rejected)} input(s)")
    return status


def _summary(args, result) -> int:
    """What :func:`agnlens.stages.explain` found for one grid, on stdout (and ``--verify``'s check)."""
    sal, flags, out = result.saliency, result.flags, result.folder
    n_bad = int((flags != "").sum())
    print(
        f"explained {len(sal)} spectra on the {result.grid} grid with {args.method} saliency of "
        f"{'the predicted class' if args.target is None else 'class ' + str(sal.target[0])} → {out.saliency}"
    )
    print(f"not applicable: {n_bad} of {len(sal)} (flags in {out.predictions})")
    where = f" in {out.saliency_figures}" if result.n_figures else ""
    print(f"figures: {result.n_figures}{where}; line table: {out.line_table}")
    _print_contributions(result, out)
    for cw in result.centre_wings:
        if cw.n_excluded:
            print(cw.excluded_text())
        for rec in cw.table.to_dict(orient="records"):
            print(
                f"{cw.line} {rec['class']}: centre {rec['centre_mean']:+.3g}, wings {rec['wings_mean']:+.3g}, "
                f"opposite signs in {100 * rec['contrast']:.0f}% of {rec['n_spectra']} spectra"
            )
    return _verify(result) if args.verify else 0


def _print_contributions(result, out) -> None:
    """The largest line contributions of the first :data:`~agnlens.stages.explanations.DESCRIBED`
    spectra (those whose contributions an explanation keeps), one line each."""
    from agnlens.stages.explanations import DESCRIBED as SENTENCES

    sal = result.saliency
    if result.contributions is None:
        print("line contributions: only with --method integrated-gradients (a map that adds up to the decision)")
        return
    print(f"line contributions: {out.line_contributions} (largest three per spectrum; sum = p - p(continuum))")
    for i in range(min(SENTENCES, len(sal))):
        print(f"  {sal.spec_id[i]} ({sal.predicted[i]}, p={sal.p_target[i]:.2f}): {result.describe(i)}")
    if len(sal) > SENTENCES:
        print(f"  ... {len(sal) - SENTENCES} more in {out.line_contributions.name}")


def _verify(result) -> int:
    """Print the check of the exact gradient on the least saturated spectra (:meth:`Explanation.verify`).

    A spectrum passes when its relative error (against the largest |finite difference| of its own
    map) is ≤ :data:`VERIFY_TOLERANCE` or its absolute error ≤ :data:`VERIFY_ABS_TOLERANCE`: where
    p_target is within ~1e-12 of 0 or 1 the gradient itself is ~1e-13, below the round-off of the
    finite differences, so only the absolute error says something. A collapsed spectrum (flag
    ``kernel-collapse``) is reported, not failed: its map is the derivative of a constant.
    """
    checks = result.verify(VERIFY_SPECTRA)
    collapsed = [f"{r.spec_id} (relative {r.max_rel_error:.1e}, absolute {r.max_abs_error:.1e})"
                 for r in checks.itertuples() if r.collapsed]
    judged = checks[~checks["collapsed"]]
    ok = (judged["max_rel_error"] <= VERIFY_TOLERANCE) | (judged["max_abs_error"] <= VERIFY_ABS_TOLERANCE)
    failed = [f"{r.spec_id} (relative {r.max_rel_error:.2e}, absolute {r.max_abs_error:.1e})"
              for r in judged[~ok].itertuples()]
    worst = (max(judged["max_rel_error"], default=0.0), max(judged["max_abs_error"], default=0.0))
    print(
        f"verify: exact gradient vs finite differences on {len(judged)} spectra, each passing at relative "
        f"error ≤ {VERIFY_TOLERANCE:g} or absolute ≤ {VERIFY_ABS_TOLERANCE:g}: {len(judged) - len(failed)} pass, "
        f"{len(failed)} fail (worst relative {worst[0]:.2e}, worst absolute {worst[1]:.1e}): "
        f"{'ok' if not failed else 'FAILED'}"
    )
    if collapsed:
        print(f"verify: {len(collapsed)} collapsed spectra reported, not checked: {', '.join(collapsed)}")
    for item in failed:
        print(f"verify: FAILED {item}")
    return 1 if failed else 0
