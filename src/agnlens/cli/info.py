"""``agnlens info``: what a store holds."""

from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser(
        "info",
        help="show what a store holds: counts per label, grid, provenance",
        description="Show the number of spectra per label, the wavelength grid and the "
        "provenance of a dataset store.",
        epilog="example:\n  agnlens info my.zarr",
    )
    p.add_argument("store", metavar="STORE")
    p.add_argument("--json", action="store_true", help="print the information as JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    from agnlens.io.store import store_info

    info = store_info(args.store)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    grid = info.get("grid") or {}
    kind = "SIMULATED" if info.get("simulated") else "real"
    print(f"{args.store}: {info['n_spectra']} {kind} spectra")
    for label, count in sorted(info.get("counts", {}).items()):
        print(f"  {label or 'unlabelled':>14}: {count}")
    if grid:
        print(
            f"grid: {grid.get('name')} {grid.get('lo', 0):.0f}–{grid.get('hi', 0):.0f} Å, "
            f"{grid.get('n_pixels')} px ({grid.get('spacing')})"
        )
    for key, value in (info.get("provenance") or {}).items():
        if key != "grid":
            print(f"{key}: {value}")
    return 0
