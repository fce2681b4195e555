"""``agnlens explain``: saliency maps, figures and the line table for a model and some spectra."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agnlens.cli import _common

#: ``--verify`` fails when the exact gradient differs from central finite differences of the
#: model's own ``predict_proba`` by more than this, relative to the largest |finite difference|
#: of the map. Exact gradients agree to ~1e-7 (the differences' own truncation and round-off
#: error); a wrong gradient (a missing scaler, a sign) is off by order 1.
VERIFY_TOLERANCE = 1e-4
#: ... or when the absolute error is below this (saturated probabilities, see ``_verify``).
VERIFY_ABS_TOLERANCE = 1e-9
#: Spectra checked by ``--verify`` (each costs 2 × n_pixels predictions).
VERIFY_SPECTRA = 10
#: Spectra per saliency call (keeps memory bounded and drives the progress bar).
CHUNK = 256

METHODS = ["gradient", "finite-difference", "smoothgrad", "integrated-gradients", "occlusion"]


def add_parser(sub) -> None:
    p = sub.add_parser(
        "explain",
        help="saliency maps (which pixels drive the predicted type), figures and a line table",
        description="Explain a classifier's decisions: for every input spectrum, the saliency map "
        "of the predicted class's probability (or of --class), one figure per spectrum with the "
        "spectrum coloured by signed saliency, and a line-level table. Writes DIR/saliency/ "
        "(values.npy, wavelength.npy, index.csv), DIR/figures/saliency/<spec_id>.png, "
        "DIR/line_table.csv and DIR/centre_wings.csv. Rejected inputs are reported one line each "
        "(exit status 1).",
        epilog="examples:\n"
        "  agnlens explain default spectra/*.fits --out explained\n"
        "  agnlens explain demo-out/models/multiclass.skops my.zarr --out expl --class type2 --verify\n"
        "  agnlens explain model.skops spec-0266-51602-0001.fits --out expl --method integrated-gradients",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", help="a model file (.skops) or 'default' for the built-in model")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="spectrum files, directories, glob patterns or a store")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--method", default="gradient", choices=METHODS, help="attribution method (default: gradient, exact)")
    p.add_argument("--class", dest="target", metavar="K", help="class to explain (label or index; default: the predicted class)")
    p.add_argument("--verify", action="store_true",
                   help=f"check the exact gradient against finite differences on up to {VERIFY_SPECTRA} "
                   f"spectra; exit 1 if the max relative error exceeds {VERIFY_TOLERANCE:g}")
    p.add_argument("--max-figures", type=int, default=50, metavar="N", help="figures for at most N spectra (default 50; 0: none)")
    p.add_argument("--panels", action="store_true", help="figures with one panel per class (the saliency of every class's probability)")
    p.add_argument("--labels", metavar="CATALOG", help="label catalogue, to show true types in titles")
    _common.add_model_sha256_argument(p)
    p.add_argument(
        "--scheduler", metavar="WHERE",
        help="survey scale: explain STORE inputs chunk by chunk on 'processes' (a Dask LocalCluster) or "
        "tcp://HOST:PORT, resumably, into DIR/<store>/saliency.zarr and index.csv (no figures or line "
        "table in this mode; run without --scheduler on a subset for those)",
    )
    p.set_defaults(run=run)


def run(args) -> int:
    import numpy as np

    from agnlens.atomic import atomic_path
    from agnlens.cli._common import report_rejections
    from agnlens.errors import UsageError
    from agnlens.explain.linestats import centre_wings, covered_lines, line_table
    from agnlens.explain.saliency import Saliency, saliency
    from agnlens.ingest import read_inputs
    from agnlens.models.default import resolve_model
    from agnlens.models.persistence import check_grid, grid_from_metadata

    if args.max_figures < 0:
        raise UsageError(f"--max-figures must be 0 or more, got {args.max_figures}")
    model, metadata = resolve_model(args.model, args.model_sha256)
    _write_provenance(Path(args.out), metadata)
    if args.scheduler:
        return _explain_stores(args, model, metadata)
    spectra, rejected = read_inputs(
        args.inputs, grid=grid_from_metadata(metadata), labels=args.labels,
        check=lambda s: check_grid(metadata, s),
    )
    report_rejections("explain", rejected)
    if not len(spectra):
        print("agnlens explain: no spectrum could be used; nothing written", file=sys.stderr)
        return 1
    X = np.asarray(spectra.flux, dtype=np.float64)
    n_features = getattr(model, "n_features_in_", X.shape[1])
    if X.shape[1] != n_features:
        raise UsageError(
            f"the model expects {n_features} pixels, the spectra have {X.shape[1]} on grid "
            f"{spectra.grid!r}; use inputs on the model's grid"
        )
    target = _parse_target(args.target, model)
    out = Path(args.out)

    parts = []
    starts = range(0, len(spectra), CHUNK)
    if args.progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="explain", unit="chunk", file=sys.stderr, leave=False)
    for start in starts:
        chunk = spectra[np.arange(start, min(start + CHUNK, len(spectra)))]
        parts.append(saliency(model, chunk, method=args.method, target=target))
    sal = Saliency.concat(parts)
    sal.save(out / "saliency")

    table = line_table(sal)
    with atomic_path(out / "line_table.csv") as tmp:
        table.to_csv(tmp, index=False)
    lines = covered_lines(sal)
    cws = [centre_wings(sal, name) for name in lines]
    if cws:
        import pandas as pd

        with atomic_path(out / "centre_wings.csv") as tmp:
            pd.concat([c.table for c in cws], ignore_index=True).to_csv(tmp, index=False)

    n_fig = min(args.max_figures, len(sal))
    if n_fig:
        panels = _all_classes(model, spectra[np.arange(n_fig)], args.method) if args.panels else None
        _figures(sal, cws, table, out, n_fig, args.progress, panels)

    status = 1 if rejected else 0
    print(
        f"explained {len(sal)} spectra with {args.method} saliency of "
        f"{'the predicted class' if target is None else 'class ' + str(args.target)} → {out / 'saliency'}"
    )
    print(f"figures: {n_fig} in {out / 'figures' / 'saliency'}; line table: {out / 'line_table.csv'}")
    for cw in cws:
        for rec in cw.table.to_dict(orient="records"):
            print(
                f"{cw.line} {rec['class']}: centre {rec['centre_mean']:+.3g}, wings {rec['wings_mean']:+.3g}, "
                f"opposite signs in {100 * rec['contrast']:.0f}% of {rec['n_spectra']} spectra"
            )
    if rejected:
        print(f"rejected: {len(rejected)} input(s)")
    if args.verify:
        status = max(status, _verify(model, X, sal))
    return status


def _verify(model, X, sal) -> int:
    """Check the exact gradient on the least saturated spectra.

    Where p_target is within ~1e-12 of 0 or 1 the gradient itself is ~1e-13, below the round-off
    of the finite differences (~1e-16 / step), so a relative error there says nothing; the check
    therefore takes the spectra whose explained probability is furthest from 0 and 1, and also
    passes when the absolute error is below :data:`VERIFY_ABS_TOLERANCE`.
    """
    import numpy as np

    from agnlens.explain.gradient import verify

    k = min(VERIFY_SPECTRA, X.shape[0])
    p = sal.p_target
    rows = np.sort(np.argsort(-np.minimum(p, 1.0 - p), kind="stable")[:k])
    check = verify(model, X[rows], target=sal.target_index[rows])
    ok = check["max_rel_error"] <= VERIFY_TOLERANCE or check["max_abs_error"] <= VERIFY_ABS_TOLERANCE
    print(
        f"verify: max relative error of the exact gradient vs finite differences "
        f"{check['max_rel_error']:.2e} (mean {check['mean_rel_error']:.2e}, max absolute "
        f"{check['max_abs_error']:.1e}) on {k} spectra; tolerance {VERIFY_TOLERANCE:g}: "
        f"{'ok' if ok else 'FAILED'}"
    )
    return 0 if ok else 1


def _explain_stores(args, model, metadata) -> int:
    """``--scheduler``: every store input through :func:`agnlens.parallel.explain_store`."""
    from pathlib import Path

    from agnlens.errors import UsageError
    from agnlens.io.store import is_store, open_store
    from agnlens.models.persistence import check_grid
    from agnlens.parallel import explain_store

    not_stores = [p for p in args.inputs if not is_store(p)]
    if not_stores:
        raise UsageError(
            f"--scheduler explains stores only; {not_stores[0]} is not one (make one with agnlens ingest)"
        )
    target = _parse_target(args.target, model)
    for store in args.inputs:
        check_grid(metadata, open_store(store))
        out = explain_store(
            model, store, Path(args.out) / Path(store).name, method=args.method, target=target,
            scheduler=args.scheduler, progress=args.progress,
        )
        print(f"explained {store} with {args.method} saliency: {out['saliency']} (index {out['index']})")
    return 0


def _write_provenance(out: Path, metadata: dict) -> None:
    """``DIR/provenance.json``: the model file (and its SHA-256) the explanations are of."""
    import json

    from agnlens import __version__
    from agnlens.atomic import write_text

    prov = {**_common.model_provenance(metadata), "software": f"agnlens {__version__}"}
    write_text(out / "provenance.json", json.dumps(prov, indent=1))


def _parse_target(text, model):
    if text is None:
        return None
    classes = [str(c) for c in getattr(model, "classes_", [])]
    if text in classes:
        return list(model.classes_)[classes.index(text)]
    if text.isdigit() and int(text) < len(classes):
        return int(text)
    from agnlens.errors import UsageError

    raise UsageError(f"--class {text!r} is not a class of the model ({', '.join(classes)}) nor an index 0..{len(classes) - 1}")


def _all_classes(model, spectra, method):
    """Saliency of every class's probability, {class: Saliency}, for ``--panels``."""
    from agnlens.explain.saliency import saliency

    return {str(c): saliency(model, spectra, method=method, target=k) for k, c in enumerate(model.classes_)}


def _figures(sal, cws, table, out: Path, n_fig: int, progress: bool, panels=None) -> None:
    from agnlens.atomic import atomic_path
    from agnlens.plot.saliency import plot_centre_wings, plot_gallery, plot_line_table, plot_saliency_panels

    def save(fig, path: Path, dpi=100):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)

    rows = range(n_fig)
    if progress:
        from tqdm.auto import tqdm

        rows = tqdm(rows, desc="figures", unit="figure", file=sys.stderr, leave=False)
    folder = out / "figures" / "saliency"
    for i in rows:
        # the pipeline's and report's file-name rule for figures/saliency/<spec_id>.png
        name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(sal.spec_id[i])) or f"row{i}"
        if panels:
            title = f"{sal.spec_id[i]}  true: {sal.labels[i] or '?'}  predicted: {sal.predicted[i]}"
            fig = plot_saliency_panels(
                sal.wavelength, sal.flux[i], {c: p.values[i] for c, p in panels.items()},
                probabilities=sal.probabilities[i], title=title,
            )
        else:
            fig = sal.plot(i).figure
        save(fig, folder / f"{name}.png", dpi=90)
    rows, _ = sal.study_sample(n_random=max(0, 30 - int(sal.misclassified.sum())), seed=0)
    title = "misclassified spectra and a random sample" if sal.misclassified.any() else "a random sample"
    save(plot_gallery(sal, rows[:30], title=title), out / "figures" / "gallery.png", dpi=80)
    save(plot_line_table(table).figure, out / "figures" / "line_table.png")
    if cws:
        save(plot_centre_wings(cws if len(cws) > 1 else cws[0]).figure, out / "figures" / "centre_wings.png")
