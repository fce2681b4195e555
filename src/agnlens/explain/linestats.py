"""Line-level explanations: saliency aggregated around lines, bands, and a line's centre vs wings.

* :func:`line_table` — per line of :data:`agnlens.lines.LINES` inside the grid, per Fe II band and
  continuum window of :data:`agnlens.lines.BANDS`, and per class: mean signed saliency, mean
  |saliency|, and the share of |saliency|.
* :func:`centre_wings` — the saliency around one line stacked in velocity space, its mean over the
  core and over the wings, and how often the two have opposite signs. The reference study found
  that the classifier weighs a line's centre and wings with opposite signs (in effect measuring
  the width); this function puts a number and an interval on that claim with fixed windows, on
  the spectra with a broad line only (:func:`broad_line_spectra`).
* :func:`agnlens.explain.wingtest.centre_wings_test` — the same claim tested properly: windows per
  object from its measured narrow and broad FWHM, only spectra with a broad component (a type 2
  has no wings: not testable), and a null test (the same window pairs at random places of the
  same maps) with its p-value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from agnlens.explain.attribution import Saliency
from agnlens.lines import BANDS, line as get_line, lines_in, velocity

#: Half widths (km/s) of the windows around lines in :func:`line_table`, by line kind: broad
#: permitted lines get room for their broad component, forbidden and absorption lines a narrow one.
LINE_HALF_WIDTH_KMS = {"broad": 3000.0, "narrow": 600.0, "absorption": 600.0}


def line_windows(
    wavelength: np.ndarray, half_width_kms: float | Mapping[str, float] | None = None, bands: bool = True
) -> list[tuple[str, str, float, float, np.ndarray]]:
    """The windows of :func:`line_table` on a grid: ``(name, kind, lo, hi, pixels)`` per line of
    :data:`agnlens.lines.LINES` inside it (and with ``bands`` per Fe II band and continuum window
    of :data:`agnlens.lines.BANDS`) that holds at least one pixel; ``pixels`` is a boolean mask."""
    widths = dict(LINE_HALF_WIDTH_KMS)
    if isinstance(half_width_kms, Mapping):
        widths.update(half_width_kms)
    elif half_width_kms is not None:
        widths = {kind: float(half_width_kms) for kind in ("broad", "narrow", "absorption")}
    wl = np.asarray(wavelength, dtype=float)
    windows = []
    for item in lines_in(wl):
        hw = widths.get(item.kind, 600.0)
        windows.append((item.name, item.kind, item.wavelength * (1 - hw / 299_792.458),
                        item.wavelength * (1 + hw / 299_792.458)))
    if bands:
        windows += [(b.name, b.kind, max(b.lo, wl[0]), min(b.hi, wl[-1])) for b in BANDS
                    if b.hi > wl[0] and b.lo < wl[-1]]
    masks = [(name, kind, float(lo), float(hi), (wl >= lo) & (wl <= hi)) for name, kind, lo, hi in windows]
    return [w for w in masks if w[4].any()]


def window_means(values: np.ndarray, windows) -> np.ndarray:
    """Each map's means over the :func:`line_windows` ``windows``: shape (n_spectra, n_windows, 3),
    the mean signed value, the mean ``|value|`` and that over the whole map's mean ``|value|`` (NaN
    for a map of zeros). Row by row, so maps computed chunk by chunk can be reduced as they come."""
    values = np.asarray(values, dtype=np.float64)
    absval = np.abs(values)
    whole = absval.mean(axis=1)
    out = np.empty((values.shape[0], len(windows), 3))
    for j, (*_, sel) in enumerate(windows):
        out[:, j, 0] = values[:, sel].mean(axis=1)
        out[:, j, 1] = absval[:, sel].mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[:, :, 2] = np.where(whole[:, None] > 0, out[:, :, 1] / whole[:, None], np.nan)
    return out


def line_table(
    saliency: Saliency,
    *,
    half_width_kms: float | Mapping[str, float] | None = None,
    by: str = "target",
    bands: bool = True,
    means: np.ndarray | None = None,
) -> pd.DataFrame:
    """Aggregate saliency in windows around lines and bands, per class.

    Parameters
    ----------
    saliency : Saliency
    half_width_kms : float or dict kind → float, optional
        Window half width around each line; default :data:`LINE_HALF_WIDTH_KMS` (broad 3000,
        narrow and absorption 600 km/s).
    by : {"target", "label", "predicted"}
        Group spectra by the explained class (default), the true label or the prediction. A row
        with class ``"all"`` pools every spectrum.
    bands : bool
        Include the Fe II bands and continuum windows of :data:`agnlens.lines.BANDS`.
    means : ndarray, optional
        :func:`window_means` of the maps over these windows, made beforehand (e.g. chunk by chunk,
        when the maps are not held in memory); then ``saliency.values`` is not read.

    Returns
    -------
    pandas.DataFrame
        One row per (window, class): ``line, kind, lo, hi, class, mean_saliency,
        mean_abs_saliency, share_abs`` (as in ``docs/results-layout.md``), then ``enrichment``,
        ``n_pixels``, ``n_spectra``.

        * ``mean_saliency`` / ``mean_abs_saliency``: the mean over the window's pixels, then over
          the class's spectra — a per-pixel quantity, so a wide window does not win by its size.
        * ``share_abs``: ``mean_abs_saliency`` divided by its sum over all windows of the class
          (sums to 1 per class; overlapping windows share pixels): which window holds the most
          ``|saliency|`` per pixel.
        * ``enrichment``: the window's mean ``|saliency|`` over the whole spectrum's mean ``|saliency|``,
          averaged over spectra (1 = a typical pixel; 5 = five times as salient as average).
    """
    windows = line_windows(saliency.wavelength, half_width_kms, bands)
    groups = _groups(_keys(saliency, by), saliency.classes)
    if means is None:
        means = window_means(saliency.values, windows)
    if means.shape[:2] != (len(saliency), len(windows)):
        raise ValueError(f"line_table: means of shape {means.shape} do not fit {len(saliency)} spectra and "
                         f"{len(windows)} windows")
    rows = []
    for cls, idx in groups.items():
        class_rows: list[dict[str, Any]] = []
        for j, (name, kind, lo, hi, sel) in enumerate(windows):
            enrich = means[idx, j, 2]
            class_rows.append(
                {
                    "line": name,
                    "kind": kind,
                    "lo": lo,
                    "hi": hi,
                    "class": cls,
                    "mean_saliency": float(means[idx, j, 0].mean()),
                    "mean_abs_saliency": float(means[idx, j, 1].mean()),
                    "share_abs": np.nan,
                    "enrichment": float(np.nanmean(enrich)) if np.any(np.isfinite(enrich)) else np.nan,
                    "n_pixels": int(sel.sum()),
                    "n_spectra": int(idx.size),
                }
            )
        total = sum(r["mean_abs_saliency"] for r in class_rows)
        for r in class_rows:
            r["share_abs"] = r["mean_abs_saliency"] / total if total > 0 else np.nan
        rows.extend(class_rows)
    columns = ["line", "kind", "lo", "hi", "class", "mean_saliency", "mean_abs_saliency", "share_abs",
               "enrichment", "n_pixels", "n_spectra"]
    return pd.DataFrame(rows, columns=columns)


#: Columns of :attr:`CentreWings.table` (``centre_wings.csv``).
CENTRE_WINGS_COLUMNS = ["line", "class", "centre_mean", "wings_mean", "contrast", "n_spectra", "centre_ci_lo",
                        "centre_ci_hi", "wings_ci_lo", "wings_ci_hi", "opposite_means", "blue_wing_mean",
                        "red_wing_mean"]


@dataclass
class CentreWings:
    """Saliency around one line stacked in velocity space, per class.

    Attributes
    ----------
    line : str
    velocity : ndarray of shape (n_velocities,)
        km/s from the line centre.
    profiles : dict class → ndarray of shape (n_spectra_in_class, n_velocities)
        Each spectrum's saliency interpolated onto ``velocity``.
    table : pandas.DataFrame
        One row per class: ``line, class, centre_mean, wings_mean, contrast, n_spectra`` (as in
        ``docs/results-layout.md``) then ``centre_ci_lo, centre_ci_hi, wings_ci_lo, wings_ci_hi``
        (bootstrap 95 % over spectra), ``opposite_means`` (the class means have opposite signs),
        ``blue_wing_mean, red_wing_mean``. ``contrast`` is the fraction of spectra whose core
        mean and wing mean have opposite signs.
    core_kms, wing_kms : float, (float, float)
    """

    line: str
    velocity: np.ndarray
    profiles: dict[str, np.ndarray]
    table: pd.DataFrame
    core_kms: float
    wing_kms: tuple[float, float]
    caveats: list[str] = field(default_factory=list)
    excluded: dict[str, int] = field(default_factory=dict)

    @property
    def n_excluded(self) -> int:
        """Spectra left out because they have no broad line (see :func:`broad_line_spectra`)."""
        return int(sum(self.excluded.values()))

    def excluded_text(self) -> str:
        """How many spectra were left out and why, in words ("" when none)."""
        if not self.n_excluded:
            return ""
        why = ", ".join(f"{n} {reason}" for reason, n in self.excluded.items() if n)
        return f"{self.n_excluded} spectra left out of {self.line} centre vs wings ({why}): {NO_WINGS_NOTE}"

    @property
    def summary(self) -> dict:
        """JSON-friendly summary: per class centre/wings means, intervals and contrast."""
        out: dict[str, Any] = {
            "line": self.line, "core_kms": self.core_kms, "wing_kms": list(self.wing_kms), "classes": {}
        }
        for rec in self.table.to_dict(orient="records"):
            out["classes"][rec["class"]] = {
                k: (bool(v) if isinstance(v, (bool, np.bool_)) else int(v) if k == "n_spectra" else float(v))
                for k, v in rec.items()
                if k not in ("line", "class")
            }
        if self.caveats:
            out["caveats"] = list(self.caveats)
        out["n_excluded"] = self.n_excluded
        out["excluded"] = dict(self.excluded)
        return out

    def mean_profile(self, cls: str) -> np.ndarray:
        """Mean stacked profile of class ``cls``, shape (n_velocities,)."""
        return self.profiles[cls].mean(axis=0)


#: Why a spectrum without a broad line has no centre-vs-wings statistics.
NO_WINGS_NOTE = "a spectrum without a broad line has no wings, so its centre vs wings means nothing"


def broad_line_spectra(saliency: Saliency, line: str = "Hbeta",
                       widths: pd.DataFrame | None = None) -> tuple[np.ndarray, dict[str, int]]:
    """Which spectra have a broad ``line`` to compare centre and wings on.

    A spectrum predicted ``type2`` has none; with ``widths``, neither has one whose measured broad
    FWHM of ``line`` is missing (NaN, or the spectrum not measured).

    Parameters
    ----------
    saliency : Saliency
    line : {"Hbeta", "Halpha"} or another line name
        ``widths`` are looked at only for Hβ (``hb_fwhm_broad``) and Hα (``ha_fwhm_broad``).
    widths : pandas.DataFrame, optional
        Keyed by ``spec_id``, as :func:`agnlens.models.baseline.measure` gives it.

    Returns
    -------
    keep : ndarray of bool, shape (n_spectra,)
    excluded : dict reason → count
        ``"predicted type 2"`` and, with ``widths``, ``"without a measured broad <line>"``.
    """
    keep = saliency.predicted != "type2"
    excluded = {"predicted type 2": int((~keep).sum())}
    column = {"Hbeta": "hb_fwhm_broad", "Halpha": "ha_fwhm_broad"}.get(line)
    if widths is not None and column in widths and "spec_id" in widths:
        table = widths.drop_duplicates("spec_id")
        broad = pd.Series(table[column].to_numpy(float), index=table["spec_id"].astype(str))
        absent = keep & ~np.isfinite(broad.reindex(saliency.spec_id).to_numpy(float))
        excluded[f"without a measured broad {get_line(line).label}"] = int(absent.sum())
        keep &= ~absent
    return keep, excluded


@dataclass
class LineProfiles:
    """The maps around one line stacked in velocity space: what :func:`centre_wings` reduces.

    Attributes
    ----------
    line : str
    velocity : ndarray of shape (n_velocities,)
        km/s from the line centre.
    keep : ndarray of bool, shape (n_spectra,)
        The spectra with a broad line (:func:`broad_line_spectra`), the ones stacked.
    stacked : ndarray of shape (keep.sum(), n_velocities)
        Their maps interpolated onto ``velocity``.
    excluded : dict reason → count
    """

    line: str
    velocity: np.ndarray
    keep: np.ndarray
    stacked: np.ndarray
    excluded: dict[str, int]

    @classmethod
    def concat(cls, parts: list[LineProfiles]) -> LineProfiles:
        """The profiles of spectra stacked chunk by chunk, in order (one line and velocity grid)."""
        first = parts[0]
        excluded: dict[str, int] = {}
        for p in parts:
            if p.line != first.line or not np.array_equal(p.velocity, first.velocity):
                raise ValueError("LineProfiles.concat: parts of different lines or velocity grids")
            for reason, n in p.excluded.items():
                excluded[reason] = excluded.get(reason, 0) + n
        return cls(first.line, first.velocity, np.concatenate([p.keep for p in parts]),
                   np.concatenate([p.stacked for p in parts]), excluded)


def line_profiles(saliency: Saliency, line: str = "Hbeta", *, widths: pd.DataFrame | None = None,
                  reach_kms: float = 4000.0, velocity_step: float = 50.0) -> LineProfiles:
    """The maps of the spectra with a broad ``line`` stacked in velocity space out to ±``reach_kms``
    (plus two steps), for :func:`centre_wings`; row by row, so maps computed chunk by chunk can be
    stacked as they come (:meth:`LineProfiles.concat`)."""
    item = get_line(line)
    wl = saliency.wavelength
    v_pix = velocity(wl, item.wavelength)
    if v_pix[0] > -reach_kms or v_pix[-1] < reach_kms:
        raise ValueError(
            f"line {line} ± {reach_kms:.0f} km/s ({item.wavelength * (1 - reach_kms / 299792.458):.0f}–"
            f"{item.wavelength * (1 + reach_kms / 299792.458):.0f} Å) is not inside the grid "
            f"{wl[0]:.0f}–{wl[-1]:.0f} Å; choose a line the grid covers or a smaller wing_kms"
        )
    keep, excluded = broad_line_spectra(saliency, line, widths)
    v_max = reach_kms + 2 * velocity_step
    vgrid = np.arange(-v_max, v_max + velocity_step / 2, velocity_step)
    rows = np.flatnonzero(keep)
    stacked = np.array([np.interp(vgrid, v_pix, saliency.values[i]) for i in rows]).reshape(rows.size, vgrid.size)
    return LineProfiles(line, vgrid, keep, stacked, excluded)


def centre_wings(
    saliency: Saliency,
    line: str = "Hbeta",
    *,
    widths: pd.DataFrame | None = None,
    core_kms: float = 600.0,
    wing_kms: tuple[float, float] = (1000.0, 4000.0),
    by: str = "target",
    velocity_step: float = 50.0,
    n_boot: int = 1000,
    seed: int = 0,
    profiles: LineProfiles | None = None,
) -> CentreWings:
    """Stack saliency around ``line`` in velocity space; compare its core with its wings.

    Parameters
    ----------
    saliency : Saliency
        Only its spectra with a broad line are stacked (:func:`broad_line_spectra`: not predicted
        type 2 and, with ``widths``, with a measured broad component); the others are counted in
        ``CentreWings.excluded``.
    line : str
        A line name of :data:`agnlens.lines.LINES` (``"Hbeta"``, ``"Halpha"``...); the window
        ±``wing_kms[1]`` must lie inside the grid.
    widths : pandas.DataFrame, optional
        :func:`agnlens.models.baseline.measure` of the spectra: leaves out those without a
        measured broad component of ``line`` too.
    core_kms : float
        The core is ``|v| < core_kms``.
    wing_kms : (float, float)
        The wings are ``wing_kms[0] ≤ |v| ≤ wing_kms[1]``, both sides pooled.
    by : {"target", "label", "predicted"}
        How spectra are grouped; a class ``"all"`` pools them.
    velocity_step : float
        Spacing (km/s) of the common velocity grid each map is interpolated onto.
    n_boot : int
        Bootstrap resamples of spectra for the 95 % intervals.
    seed : int
    profiles : LineProfiles, optional
        :func:`line_profiles` of the maps (``reach_kms=wing_kms[1]``), made beforehand (e.g. chunk
        by chunk); then ``saliency.values`` is not read.

    Returns
    -------
    CentreWings

    Notes
    -----
    Hα's wings contain [N II] 6550/6585 (−670 and +940 km/s) and Hβ's red wing reaches towards
    [O III] 4960 (+6000 km/s) only beyond the default wing range; the Hα numbers therefore mix the
    broad-line wings with [N II] (recorded in ``caveats``).
    """
    lo_v, hi_v = wing_kms
    if not (0 < core_kms <= lo_v < hi_v):
        raise ValueError(f"need 0 < core_kms ≤ wing_kms[0] < wing_kms[1], got {core_kms} and {wing_kms}")
    if profiles is None:
        profiles = line_profiles(saliency, line, widths=widths, reach_kms=hi_v, velocity_step=velocity_step)
    if profiles.line != line or profiles.keep.shape != (len(saliency),) or profiles.velocity[-1] < hi_v:
        raise ValueError(f"centre_wings: the profiles of {profiles.line} ({profiles.keep.size} spectra, to "
                         f"{profiles.velocity[-1]:.0f} km/s) are not of {line} on these {len(saliency)} spectra")
    vgrid, stacked = profiles.velocity, profiles.stacked
    core = np.abs(vgrid) < core_kms
    wings = (np.abs(vgrid) >= lo_v) & (np.abs(vgrid) <= hi_v)
    blue = wings & (vgrid < 0)
    red = wings & (vgrid > 0)
    rng = np.random.default_rng(seed)
    rows, profile_of = [], {}
    keys = _keys(saliency, by)[profiles.keep]
    for cls, idx in (_groups(keys, saliency.classes) if keys.size else {}).items():
        prof = stacked[idx]
        profile_of[cls] = prof
        c = prof[:, core].mean(axis=1)
        w = prof[:, wings].mean(axis=1)
        opposite = np.sign(c) * np.sign(w) < 0
        c_lo, c_hi = bootstrap_ci(c, n_boot, rng)
        w_lo, w_hi = bootstrap_ci(w, n_boot, rng)
        rows.append(
            {
                "line": line,
                "class": cls,
                "centre_mean": float(c.mean()),
                "wings_mean": float(w.mean()),
                "contrast": float(opposite.mean()),
                "n_spectra": int(idx.size),
                "centre_ci_lo": c_lo,
                "centre_ci_hi": c_hi,
                "wings_ci_lo": w_lo,
                "wings_ci_hi": w_hi,
                "opposite_means": bool(np.sign(c.mean()) * np.sign(w.mean()) < 0),
                "blue_wing_mean": float(prof[:, blue].mean()),
                "red_wing_mean": float(prof[:, red].mean()),
            }
        )
    caveats = []
    if line == "Halpha":
        caveats.append("Hα core/wings include [N II] 6550/6585 (−670/+940 km/s)")
    return CentreWings(
        line=line,
        velocity=vgrid,
        profiles=profile_of,
        table=pd.DataFrame(rows, columns=CENTRE_WINGS_COLUMNS),
        core_kms=float(core_kms),
        wing_kms=(float(lo_v), float(hi_v)),
        caveats=caveats,
        excluded=dict(profiles.excluded),
    )


#: Why spectra without a broad component are left out of :func:`centre_wings_test`.
def covered_lines(saliency: Saliency, candidates=("Hbeta", "Halpha"), wing_kms: float = 4000.0) -> list[str]:
    """Which of ``candidates`` the grid covers out to ±``wing_kms`` (for :func:`centre_wings`)."""
    wl = saliency.wavelength
    out = []
    for name in candidates:
        v = velocity(wl, get_line(name).wavelength)
        if v[0] <= -wing_kms and v[-1] >= wing_kms:
            out.append(name)
    return out


# --------------------------------------------------------------------------------------------


def _keys(saliency: Saliency, by: str) -> np.ndarray:
    """What :func:`line_table` and :func:`centre_wings` group spectra by."""
    if by not in ("target", "label", "predicted"):
        raise ValueError(f"by must be 'target', 'label' or 'predicted', got {by!r}")
    return {"target": saliency.target, "label": saliency.labels, "predicted": saliency.predicted}[by]


def _groups(keys: np.ndarray, classes) -> dict[str, np.ndarray]:
    known = [str(c) for c in classes]
    groups = {}
    for cls in known + sorted(set(keys) - set(known)):
        idx = np.flatnonzero(keys == cls)
        if idx.size:
            groups[cls or "unlabelled"] = idx
    groups["all"] = np.arange(len(keys))
    return groups


def bootstrap_ci(x: np.ndarray, n_boot: int, rng: np.random.Generator) -> tuple[float, float]:
    """Bootstrap 95 % interval of the mean of ``x`` (NaNs for fewer than two values)."""
    if x.size < 2 or n_boot < 1:
        return float("nan"), float("nan")
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


__all__ = ["CentreWings", "LineProfiles", "bootstrap_ci", "broad_line_spectra", "centre_wings", "covered_lines",
           "line_profiles", "line_table", "line_windows", "window_means"]
