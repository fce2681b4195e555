"""Reading a results folder for the report, and the number formats of the page (Jinja filters).

Every reader returns None (the section then says \"not computed\") rather than failing.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agnlens.classes import CLASS_NAMES
from agnlens.errors import AgnlensError

logger = logging.getLogger("agnlens.report")


class ResultsFolderError(AgnlensError, ValueError):
    """The results folder cannot be reported on (no folder, or no valid ``metrics.json``)."""



# ----------------------------------------------------------------------------------------------
# formatting helpers (also registered as Jinja filters)


def finite_or_none(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def opposite_signs(a: Any, b: Any) -> bool:
    """Both finite numbers, one positive and one negative."""
    x, y = finite_or_none(a), finite_or_none(b)
    return x is not None and y is not None and x * y < 0


def fmt(x: Any, digits: int = 3) -> str:
    """A number with ``digits`` decimals, or "—" when missing; non-numbers as text."""
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    v = finite_or_none(x)
    if v is None:
        return "—" if isinstance(x, (float, np.floating)) or str(x).lower() in ("", "nan", "none") else str(x)
    return f"{v:.{digits}f}"


def fmt_g(x: Any, digits: int = 3) -> str:
    """A number with ``digits`` significant figures (for C, γ, errors), or "—"."""
    if x is None:
        return "—"
    v = finite_or_none(x)
    if v is None:
        return "—" if str(x).lower() in ("", "nan", "none") else str(x)
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e6):
        return f"{v:.{max(digits - 1, 0)}e}"
    if abs(v) >= 10 ** digits:  # 3729.0 reads better as 3,729 than as 3.73e+03
        return f"{v:,.0f}" if v == round(v) else f"{v:,.1f}"
    return f"{v:.{digits}g}"


def fmt_ci(ci: Any, digits: int = 3) -> str:
    """A 95 % interval as "[lo, hi]", or "" when missing."""
    if not isinstance(ci, (list, tuple)) or len(ci) != 2:
        return ""
    lo, hi = (finite_or_none(v) for v in ci)
    if lo is None or hi is None:
        return ""
    return f"[{lo:.{digits}f}, {hi:.{digits}f}]"


def fmt_s(x: Any) -> str:
    """Seconds, with sensible precision."""
    v = finite_or_none(x)
    if v is None:
        return "—"
    if v >= 100:
        return f"{v:.0f} s"
    if v >= 1:
        return f"{v:.1f} s"
    return f"{v:.2f} s"


def class_name(label: Any) -> str:
    """Human-readable class name ("type1" → "type 1")."""
    return CLASS_NAMES.get(str(label), str(label))


# ----------------------------------------------------------------------------------------------
# reading the folder


def read_metrics(folder: Path) -> dict:
    path = folder / "metrics.json"
    if not path.is_file():
        raise ResultsFolderError(
            f"{path}: no metrics.json in the results folder; expected the output of "
            "`agnlens demo --out DIR` (run it first, or pass the folder it wrote)"
        )
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultsFolderError(
            f"{path}: not valid JSON ({exc}); rerun `agnlens demo` to rewrite the results folder"
        ) from None
    if not isinstance(metrics, dict):
        raise ResultsFolderError(
            f"{path}: expected a JSON object with keys dataset, binary, multiclass..., "
            f"got a {type(metrics).__name__}; rerun `agnlens demo` to rewrite the results folder"
        )
    return metrics


def read_frame(folder: Path, name: str | Path) -> pd.DataFrame | None:
    path = folder / name
    if not path.is_file():
        logger.info("report: %s not found, section marked as not computed", path)
        return None
    try:
        return pd.read_csv(path, dtype={"spec_id": str, "label": str, "predicted_label": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        logger.warning("report: %s could not be read (%s), section marked as not computed", path, exc)
        return None


def as_bool(series: pd.Series) -> np.ndarray:
    if series.dtype == bool:
        return series.to_numpy()
    return series.astype(str).str.strip().str.lower().isin(["true", "1", "1.0", "yes"]).to_numpy()


def section_of(mapping: Any, key: str) -> dict:
    """``mapping[key]`` when that is a dict, else an empty one (a metrics.json may lack any section)."""
    value = mapping.get(key) if isinstance(mapping, dict) else None
    return value if isinstance(value, dict) else {}


def _png_data_uri(path: Path, max_width: int, palette: bool = False) -> tuple[str, int, int] | None:
    """Read a PNG, downscale it to ``max_width`` pixels and return (data URI, width, height)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            opened.load()
            im: Image.Image = opened
            if im.width > max_width:
                height = max(1, round(im.height * max_width / im.width))
                im = im.resize((max_width, height), Image.Resampling.LANCZOS)
            if im.mode not in ("RGB", "RGBA", "P", "L"):
                im = im.convert("RGBA")
            if palette and im.mode in ("RGB", "RGBA"):
                # figures are flat colours on white: 256-colour palettes keep them crisp at ~1/3 size
                im = _palette(im)
            buf = io.BytesIO()
            im.save(buf, format="PNG", compress_level=6)
            width, height = im.size
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        logger.warning("report: %s is not a readable PNG (%s); left out", path, exc)
        return None
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), width, height


def _palette(im):
    """``im`` with 256 colours, most frequent first (PIL's max-coverage quantizer): the octree one
    merged the palest colours — faint saliency traces, light confusion cells — into the white."""
    from PIL import Image

    return im.convert("RGB").quantize(colors=256, method=Image.Quantize.MAXCOVERAGE, dither=Image.Dither.NONE)


def embed_figure(folder: Path, rel: str | Path, max_width: int = 900, palette: bool = True) -> dict | None:
    """A figure of the folder as a data URI; ``rel`` a name inside it or a path under it."""
    path = (folder / rel).resolve()
    if not path.is_relative_to(folder.resolve()) or not path.is_file():
        return None
    rel = path.relative_to(folder.resolve()).as_posix()
    out = _png_data_uri(path, max_width, palette=palette)
    if out is None:
        return None
    uri, w, h = out
    return {"src": uri, "width": w, "height": h, "name": rel}


def tuning_figure(tuning: pd.DataFrame, title: str) -> dict:
    """Validation F1 against C, drawn here from the search table (the results folder has no such figure)."""
    from matplotlib.figure import Figure
    from PIL import Image

    from agnlens.plot.metrics import plot_tuning
    from agnlens.plot.save import figure_png

    n_groups = len(tuning.drop_duplicates([c for c in ("kernel", "gamma", "degree", "class_weight") if c in tuning]))
    wide = n_groups > 14  # two legend columns
    fig = Figure(figsize=(9.6 if wide else 8.0, 4.2))  # fixed margins: constrained layout would double the cost
    fig.subplots_adjust(left=0.08, right=0.52 if wide else 0.62, bottom=0.12, top=0.92)
    plot_tuning(tuning, ax=fig.add_subplot(), title=title)
    with Image.open(io.BytesIO(figure_png(fig, dpi=90))) as opened:
        im = _palette(opened)
        out = io.BytesIO()
        im.save(out, format="PNG", compress_level=6)
        w, h = im.size
    return {"src": "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii"),
            "width": w, "height": h, "name": "tuning figure"}


def records_of(frame: pd.DataFrame) -> list[dict]:
    return [{k: (None if (isinstance(v, float) and not math.isfinite(v)) else v) for k, v in row.items()}
            for row in frame.to_dict(orient="records")]
