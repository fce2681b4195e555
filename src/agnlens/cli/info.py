"""``agnlens info``: what a store or a model file holds."""

from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser(
        "info",
        help="show what a store holds (counts per label, grid, provenance) or a model file (task, grid, convention)",
        description="For a dataset store: the number of spectra per label, the wavelength grid and the "
        "provenance. For a model file (agnlens train), or 'default' for the built-in models: its task and "
        "classes, grid, the class convention it answers in, what it was trained on and its scores (the "
        "built-in models are described from the cache, never built here).",
        epilog="examples:\n  agnlens info my.zarr\n  agnlens info multiclass.skops\n  agnlens info default",
    )
    p.add_argument("target", metavar="STORE|MODEL", help="a store, a model file, or 'default'")
    p.add_argument("--json", action="store_true", help="print the information as JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    from agnlens.io.store import is_store, store_info
    from agnlens.models.default import is_default

    if is_default(args.target):
        return _default_models(args)
    if not is_store(args.target):
        from agnlens.models.persistence import read_metadata

        return _model(args, read_metadata(args.target))
    info = store_info(args.target)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    grid = info.get("grid") or {}
    kind = "SIMULATED" if info.get("simulated") else "real"
    print(f"{args.target}: {info['n_spectra']} {kind} spectra")
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


def _model_json(meta: dict) -> dict:
    """A model file's metadata without the tuning table and the grid's wavelengths, with its convention."""
    from agnlens.stages import convention_of

    shown = {k: v for k, v in meta.items() if k != "tuning"}
    if isinstance(shown.get("grid"), dict):  # the summary; the exact wavelengths stay in the file
        shown["grid"] = {k: v for k, v in shown["grid"].items() if k != "wavelength"}
    shown["convention"] = convention_of(meta)
    return shown


def _model(args, meta: dict) -> int:
    """A model file's metadata: one screen, or JSON."""
    from agnlens.cli._common import convention_line
    from agnlens.stages import convention_of

    if args.json:
        print(json.dumps(_model_json(meta), indent=2, default=str))
        return 0
    grid = meta.get("grid") or {}
    sizes = meta.get("split_sizes") or {}
    kind = "SIMULATED" if meta.get("simulated") else "real"
    print(f"{meta['file']}: {meta.get('task')} model, classes {', '.join(map(str, meta.get('classes') or []))}")
    print(f"sha256: {meta.get('file_sha256')}")
    if grid:
        print(f"grid: {grid.get('name')} {grid.get('lo', 0):.0f}–{grid.get('hi', 0):.0f} Å, {grid.get('n_pixels')} px")
    print(convention_line(convention_of(meta)))
    print(f"trained on {meta.get('n_spectra', sum(sizes.values()))} {kind} spectra, split "
          + "/".join(str(sizes.get(k, "?")) for k in ("train", "validation", "test"))
          + f" (train/validation/test, seed {meta.get('split_seed')})")
    print(f"best: {meta.get('best_params')}")
    for name in ("validation", "test"):
        if isinstance(meta.get(name), dict) and "f1" in meta[name]:
            print(f"{name} macro F1 ({kind}): {meta[name]['f1']:.3f}")
    if meta.get("default_model"):
        print(f"built-in default model; rebuild by hand: {meta['default_model'].get('rebuild')}")
    print(f"agnlens {(meta.get('versions') or {}).get('agnlens', '?')}")
    return 0


def _default_models(args) -> int:
    """Where the built-in models are cached and, for the ones already built, what they are."""
    from agnlens.models.default import DEFAULT_GRIDS, default_model_path
    from agnlens.models.persistence import read_metadata

    found = []
    for grid in DEFAULT_GRIDS:
        path = default_model_path("multiclass", grid)
        meta = read_metadata(path) if path.exists() else None
        found.append({"grid": grid, "path": str(path), "built": meta is not None,
                      "model": None if meta is None else _model_json(meta)})
        if args.json:
            continue
        if meta is None:
            print(f"built-in {grid}-grid model: not built yet (built on first use, ~30 s; cached in {path})")
        else:
            print(f"built-in {grid}-grid model:")
            _model(args, meta)
    if args.json:
        print(json.dumps(found, indent=2, default=str))
    return 0
