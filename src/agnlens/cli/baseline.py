"""``agnlens baseline``: classify spectra by the physics rule and write the measurements."""

from __future__ import annotations

import argparse
import textwrap

from agnlens.cli._common import add_jobs_argument, add_overwrite_argument, nonnegative_float

_RULES = "{rules}"


class _RulesFormatter(argparse.RawDescriptionHelpFormatter):
    """Fills in the baseline's rules only when help is printed (importing the models costs ~1 s)."""

    def add_text(self, text):
        if text and _RULES in text:
            from agnlens.models.baseline import rules

            text = text.replace(_RULES, "\n".join(
                textwrap.fill(r, width=96, initial_indent="  - ", subsequent_indent="    ", break_on_hyphens=False)
                for r in rules()
            ))
        super().add_text(text)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "baseline",
        help="classify by Gaussian fits of Hβ/Hα (physics rule) and write the measurements",
        description="Fit narrow and broad Gaussian components (and Fe II) to Hβ + [O III] and, on the balmer "
        "grid, Hα + [N II] of every spectrum, classify by the Osterbrock-Winkler rules of "
        "agnlens.models.baseline.PhysicsBaseline, and write one row of measurements per spectrum (subtype, "
        "predicted_label, flags, broad FWHM with errors, broad flux share, ΔBIC, [O III]/Hβ, [N II]/Hα, BPT class...). "
        "FITS inputs are read and preprocessed onto --grid; a store is used on its own grid. Rejected inputs "
        "are named on stderr (exit status 1), the rest are measured.",
        epilog="rules:\n" + _RULES + "\n\nexamples:\n  agnlens baseline spectra/*.fits --out baseline.csv\n"
        "  agnlens baseline my.zarr --out baseline.csv --seyfert",
        formatter_class=_RulesFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUTS", help="FITS files, directories, glob patterns or stores")
    p.add_argument("--out", required=True, metavar="CSV", help="table of measurements to write")
    p.add_argument("--grid", default="balmer", choices=["paper", "balmer"],
                   help="grid FITS inputs are preprocessed onto (default balmer: it reaches Hα)")
    p.add_argument("--labels", metavar="CSV", help="label catalogue for FITS inputs (adds its label column)")
    p.add_argument("--seyfert", action="store_true",
                   help="map subtypes 1.2 and 1.5 to intermediate (Seyferts) instead of type 1 (quasars)")
    add_jobs_argument(p, "line-fitting processes", 1)
    add_overwrite_argument(p)
    p.add_argument("--min-fwhm", type=nonnegative_float, default=1200.0, metavar="KMS", help="least broad FWHM (km/s)")
    p.add_argument("--min-delta-bic", type=nonnegative_float, default=10.0, metavar="X",
                   help="least ΔBIC of a broad line")
    p.set_defaults(run=run)


def run(args) -> int:
    import pandas as pd

    from agnlens.atomic import write_csv
    from agnlens.cli._common import claim_output, report_rejections
    from agnlens.errors import UsageError
    from agnlens.stages import baseline, read_inputs

    claim_output(args, [*args.inputs, args.labels])
    spectra, rejected = read_inputs(args.inputs, grid=args.grid, labels=args.labels)
    report_rejections("baseline", rejected)
    if len(spectra) == 0:
        raise UsageError(f"no spectra to measure in {' '.join(args.inputs)}")
    table = baseline(spectra, min_broad_fwhm=args.min_fwhm, min_delta_bic=args.min_delta_bic,
                     quasar=not args.seyfert, n_jobs=args.jobs)
    write_csv(args.out, table)
    counts = table["predicted_label"].replace("", "unclassified").value_counts().to_dict()
    n_flagged = int((table["flags"] != "").sum())
    print(f"{len(table)} spectra classified by the physics baseline -> {args.out}: {counts}; "
          f"{n_flagged} flagged; {len(rejected)} rejected")
    if "label" in table:
        print(pd.crosstab(table["label"], table["predicted_label"]).to_string())
    return 1 if rejected else 0
