"""``agnlens simulate``: realistic simulated AGN spectra to a store and/or SDSS FITS files."""

from __future__ import annotations

import argparse

from agnlens.cli._common import nonnegative_int, positive_int
from agnlens.errors import UsageError

#: Same bound as the library (agnlens.simulate.MAX_SPECTRA, kept here so --help needs no numpy
#: import): 10^7 spectra are ~80 GB preprocessed, ~650 GB in the observed frame, and hours of CPU.
MAX_SPECTRA = 10_000_000
#: Above this many spectra (~3 s of work) a progress bar is shown on a terminal.
PROGRESS_FROM = 5_000


def add_parser(sub) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate type 1 / type 2 / intermediate AGN spectra (store and/or SDSS FITS files)",
        description="Simulate realistic AGN spectra: host starlight, power-law continuum, Fe II, "
        "narrow and broad lines, SDSS-like resolution and noise. The default sample mirrors "
        "Peruzzi et al. 2021 (3,346 spectra: 680 type 1, 2,145 type 2, 521 intermediate in the study's "
        "class convention), labelled by default in the spectroscopic convention of the built-in models. "
        "Everything derived from these spectra is labelled SIMULATED.",
        epilog="examples:\n  agnlens simulate --n 3346 --seed 0 --out sim.zarr\n"
        "  agnlens simulate --n 100 --fits-dir sim-fits/   # spec-*.fits + labels.csv\n"
        "  agnlens ingest sim-fits/ --labels sim-fits/labels.csv --out sim.zarr",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--n", type=positive_int, default=3346,
                   help=f"number of spectra (default 3346, at most {MAX_SPECTRA:,}; "
                        f"a bar shows progress above {PROGRESS_FROM:,})")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="random seed; the same seed gives identical spectra")
    p.add_argument("--out", metavar="STORE", help="write a preprocessed Zarr store")
    p.add_argument("--fits-dir", metavar="DIR", help="write SDSS-format spec-*.fits files")
    p.add_argument("--grid", default="paper", choices=["paper", "balmer"], help="grid of the store (default paper)")
    p.add_argument("--redshift", default="balmer", choices=["balmer", "paper", "full"],
                   help="redshift preset: balmer U(0.025, 0.30), paper (the study's per-class ranges) or full "
                        "(the whole range the grid allows in SDSS/BOSS spectra: balmer to z ≈ 0.55, paper to "
                        "z ≈ 0.97; the default models' training set); default balmer")
    p.add_argument("--convention", default="spectroscopic", choices=["spectroscopic", "study"],
                   help="class convention of the labels: spectroscopic (default, the built-in models' and "
                        "SDSS-style catalogues': broad Hβ with [O III]/Hβ ≤ 4, Winkler 1.0-1.5, is type1; "
                        "intermediate = 1.8/1.9; the study's class kept in label_study) or study (the "
                        "reference study's, which agnlens demo reproduces: intermediate = Seyfert 1.2-1.9)")
    p.add_argument("--overwrite", action="store_true", help="replace STORE if it exists")
    p.set_defaults(run=run)


def run(args) -> int:
    if not args.out and not args.fits_dir:
        raise UsageError("say where to write: --out STORE and/or --fits-dir DIR")
    if args.n < 1:
        raise UsageError(f"--n must be at least 1, got {args.n}")
    if args.n > MAX_SPECTRA:
        raise UsageError(
            f"--n {args.n:,} is more than {MAX_SPECTRA:,} spectra: they would need over "
            f"{args.n * 8 // 10**6:,} GB of memory; run several smaller simulations with different --seed values "
            "instead"
        )
    from agnlens.cli._common import check_output, convention_line
    from agnlens.simulate import simulate, simulate_set

    if args.out:
        check_output(args.out, overwrite=args.overwrite)
    print(convention_line(args.convention))

    def bar(what: str):
        if args.n < PROGRESS_FROM or not getattr(args, "progress", False):
            return None
        import sys

        from tqdm.auto import tqdm

        return tqdm(total=args.n, desc=what, unit="spectra", file=sys.stderr, leave=False)

    if args.fits_dir:
        from pathlib import Path

        from agnlens.io.sdss_write import write_labels, write_sdss_many

        progress = bar("simulate")
        spectra = simulate(args.n, seed=args.seed, grid=args.grid, redshift=args.redshift,
                           progress=progress and progress.update,
                           convention=args.convention)
        if progress:
            progress.close()
        paths = write_sdss_many(spectra, args.fits_dir)
        write_labels(spectra, Path(args.fits_dir) / "labels.csv")
        print(
            f"wrote {len(paths)} SIMULATED spec-*.fits files and their labels.csv to {args.fits_dir}\n"
            f"next: agnlens ingest {args.fits_dir} --labels {Path(args.fits_dir) / 'labels.csv'} --out STORE"
        )
    if args.out:
        from agnlens.io.store import write_store

        progress = bar("simulate + preprocess")
        spectrum_set = simulate_set(args.n, seed=args.seed, grid=args.grid, redshift=args.redshift,
                                    progress=progress and progress.update,
                                    convention=args.convention)
        if progress:
            progress.close()
        write_store(spectrum_set, args.out, overwrite=args.overwrite)
        counts = spectrum_set.meta["label"].value_counts().to_dict()
        print(f"wrote {len(spectrum_set)} SIMULATED spectra on the {args.grid} grid to {args.out}: {counts}")
    return 0
