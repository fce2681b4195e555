"""``agnlens download``: fetch the SDSS spectra a plate-mjd-fiber catalogue names."""

from __future__ import annotations

import sys


def add_parser(sub) -> None:
    p = sub.add_parser(
        "download",
        help="fetch the SDSS spectra a plate-mjd-fiber catalogue names from the SAS",
        description="Download the spectra a catalogue names (columns spec_id / pmf, or plate, mjd "
        "and fiber) from the SDSS Science Archive Server: Legacy and BOSS locations, a few "
        "parallel workers, resumable (files present and valid are skipped), retries, every file "
        "verified to open. Exit status 0 when all are present, 1 when some failed.",
        epilog="example, the reference study's intermediate Seyferts:\n"
        "  agnlens download ../shared/data/catalogs/peruzzi_intermediate_seyferts.csv --out spectra/",
    )
    p.add_argument("catalog", metavar="CATALOG", help="catalogue file (CSV, ECSV or FITS table)")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the spec-*.fits files")
    p.add_argument("--release", default="dr17", choices=["dr17", "dr16"], help="SDSS data release")
    p.add_argument("--base-url", default=None, metavar="URL", help="archive root (default the SAS)")
    p.add_argument("--workers", type=int, default=4, metavar="N", help="parallel downloads (default 4)")
    p.add_argument("--retries", type=int, default=3, metavar="N", help="retries per file (default 3)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S", help="seconds a single network read may wait (default 30)")
    p.add_argument("--deadline", type=float, default=300.0, metavar="S",
                   help="seconds one file's transfer may take in total (default 300)")
    p.add_argument("--max-bytes", type=int, default=50_000_000, metavar="N",
                   help="largest file accepted, bytes (default 50,000,000)")
    p.set_defaults(run=run)


def run(args) -> int:
    from agnlens.io.download import DEFAULT_BASE_URL, download

    for flag, value, least in (("--workers", args.workers, 1), ("--retries", args.retries, 0)):
        if value < least:
            print(f"agnlens download: error: {flag} must be at least {least}, got {value}", file=sys.stderr)
            return 2
    for flag, value in (("--timeout", args.timeout), ("--deadline", args.deadline), ("--max-bytes", args.max_bytes)):
        if not value > 0:
            print(f"agnlens download: error: {flag} must be positive, got {value}", file=sys.stderr)
            return 2
    report = download(
        args.catalog,
        args.out,
        release=args.release,
        base_url=args.base_url or DEFAULT_BASE_URL,
        max_workers=args.workers,
        retries=args.retries,
        timeout=args.timeout,
        deadline=args.deadline,
        max_bytes=args.max_bytes,
        progress=args.progress,
    )
    for spec_id, reason in report.failed.items():
        print(f"agnlens download: failed {spec_id}: {reason}", file=sys.stderr)
    print(
        f"{len(report.done)} downloaded, {len(report.skipped)} already present, "
        f"{len(report.failed)} failed, in {report.out_dir}"
    )
    return 0 if report.ok else 1
