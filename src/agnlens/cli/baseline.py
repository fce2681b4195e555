"""``agnlens baseline``: classify a store by the physics rule and write the measurements."""

from __future__ import annotations

import sys


def add_parser(sub) -> None:
    p = sub.add_parser(
        "baseline",
        help="classify by Gaussian fits of Hβ/Hα (physics rule) and write the measurements",
        description="Fit narrow and broad Gaussian components to Hβ + [O III] (and Hα + [N II] on "
        "the balmer grid) of every spectrum in a store, classify them by the Osterbrock-Winkler "
        "rules of agnlens.models.baseline.PhysicsBaseline, and write one row of measurements per "
        "spectrum (subtype, label, broad FWHM, broad flux share, ΔBIC, [O III]/Hβ, ...).",
        epilog="example:\n  agnlens baseline my.zarr --out baseline.csv",
    )
    p.add_argument("store", metavar="STORE", help="a dataset store (agnlens ingest / simulate)")
    p.add_argument("--out", required=True, metavar="CSV", help="table of measurements to write")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="worker processes (-1: all CPUs)")
    p.add_argument("--min-fwhm", type=float, default=1200.0, metavar="KMS", help="least broad FWHM (km/s)")
    p.add_argument("--min-delta-bic", type=float, default=10.0, metavar="X", help="least ΔBIC of a broad line")
    p.set_defaults(run=run)


def run(args) -> int:
    import numpy as np
    import pandas as pd

    from agnlens.atomic import write_csv
    from agnlens.cli._common import check_output
    from agnlens.io.store import open_store
    from agnlens.models.baseline import PhysicsBaseline

    check_output(args.out, [args.store])
    spectra = open_store(args.store, lazy=False)
    if len(spectra) == 0:
        print(f"agnlens baseline: error: {args.store} holds no spectra", file=sys.stderr)
        return 1
    model = PhysicsBaseline(min_broad_fwhm=args.min_fwhm, min_delta_bic=args.min_delta_bic, n_jobs=args.jobs)
    table = model.fit(spectra).measure(spectra)
    truth = spectra.labels
    if np.any(truth != ""):
        table.insert(1, "true_label", truth)
    write_csv(args.out, table)
    counts = table["label"].replace("", "unclassified").value_counts().to_dict()
    print(f"{len(table)} spectra classified by the physics baseline -> {args.out}: {counts}")
    if "true_label" in table:
        print(pd.crosstab(table["true_label"], table["label"]).to_string())
    return 0
