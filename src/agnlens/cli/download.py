"""``agnlens download``: fetch the SDSS spectra a plate-mjd-fiber catalogue names."""

from __future__ import annotations

import argparse
import sys

from agnlens.cli._common import add_jobs_argument, check_output, nonnegative_int, positive_float, positive_int


def add_parser(sub) -> None:
    p = sub.add_parser(
        "download",
        help="fetch the SDSS spectra a plate-mjd-fiber catalogue names from the SAS",
        description="Download the spectra a catalogue names (columns spec_id / pmf, or plate, mjd "
        "and fiber) from the SDSS Science Archive Server: Legacy and BOSS locations, a few "
        "parallel downloads (--jobs), resumable (files present and valid are skipped), retries, every file "
        "verified to open. A catalogue row that names no valid spectrum (blank or non-numeric plate, a fibre "
        "out of range) is left out and named; the other rows are downloaded. Exit status 0 when all are "
        "present, 1 when some failed or were left out.",
        epilog="example, the reference study's intermediate Seyferts (a catalogue in a clone of the repository):\n"
        "  agnlens download tests/data/catalogs/peruzzi_intermediate_seyferts.csv --out spectra/\n"
        "example, the reference study's whole real sample (type 1 quasars from the SkyServer, the\n"
        "Peruzzi type 2 and intermediate lists), then training on it:\n"
        "  agnlens download --sample peruzzi2021 --out peruzzi/\n"
        "  agnlens ingest peruzzi/ --labels peruzzi/labels.csv --out peruzzi.zarr\n"
        "  agnlens demo --store peruzzi.zarr --out demo-real",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("catalog", nargs="?", metavar="CATALOG", help="catalogue file (CSV, ECSV or FITS table)")
    p.add_argument("--sample", choices=["peruzzi2021"], help="instead of CATALOG: a published sample, "
                   "its labels written to DIR/labels.csv")
    p.add_argument("--skyserver-url", default=None, metavar="URL",
                   help="SDSS SkyServer SQL search service for --sample (default the DR17 SqlSearch)")
    p.add_argument("--quasars", type=nonnegative_int, default=680, metavar="N",
                   help="type 1 quasars of --sample (default 680)")
    p.add_argument("--type2-catalog", metavar="CSV", help="for --sample: another type 2 list in the shipped "
                   "catalogues' format (pmf or plate/mjd/fiberid)")
    p.add_argument("--intermediate-catalog", metavar="CSV", help="for --sample: another intermediate list")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the spec-*.fits files")
    p.add_argument("--release", default="dr17", choices=["dr17", "dr16"], help="SDSS data release")
    p.add_argument("--base-url", "--archive-url", dest="base_url", default=None, metavar="URL",
                   help="archive root (default the SAS, https://data.sdss.org/sas)")
    add_jobs_argument(p, "downloads", 4)
    p.add_argument("--retries", type=nonnegative_int, default=3, metavar="N", help="retries per file (default 3)")
    p.add_argument("--timeout", type=positive_float, default=30.0, metavar="S",
                   help="seconds a single network read may wait (default 30)")
    p.add_argument("--deadline", type=positive_float, default=300.0, metavar="S",
                   help="seconds one file's transfer may take in total (default 300)")
    p.add_argument("--max-bytes", type=positive_int, default=50_000_000, metavar="N",
                   help="largest file accepted, bytes (default 50,000,000)")
    p.set_defaults(run=run)


def run(args) -> int:
    from agnlens.io.download import DEFAULT_BASE_URL, download

    if (args.catalog is None) == (args.sample is None):
        print("agnlens download: error: give a CATALOG or --sample NAME (one of them)", file=sys.stderr)
        return 2
    check_output(args.out, [args.catalog, args.type2_catalog, args.intermediate_catalog], adds_to_folder=True)
    kw = dict(release=args.release, base_url=args.base_url or DEFAULT_BASE_URL, max_workers=args.jobs,
              retries=args.retries, timeout=args.timeout, deadline=args.deadline, max_bytes=args.max_bytes,
              progress=args.progress)
    if args.sample:
        from agnlens.io.samples import DEFAULT_SKYSERVER_URL, download_sample

        sample = download_sample(args.sample, args.out, skyserver_url=args.skyserver_url or DEFAULT_SKYSERVER_URL,
                                 n_quasars=args.quasars, type2_catalog=args.type2_catalog,
                                 intermediate_catalog=args.intermediate_catalog, **kw)
        report = sample.download
        counts = ", ".join(f"{k} {v}" for k, v in sorted(sample.counts.items())) or "none"
        print(f"labels for {sum(sample.counts.values())} spectra ({counts}) in {sample.labels}")
    else:
        report = download(args.catalog, args.out, **kw)
    for line in report.left_out:
        print(f"agnlens download: left out {line}", file=sys.stderr)
    for spec_id, reason in report.failed.items():
        print(f"agnlens download: failed {spec_id}: {reason}", file=sys.stderr)
    print(report.counts())
    return 0 if report.ok else 1
