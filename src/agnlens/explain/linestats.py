"""Line-level explanations: saliency aggregated around lines, bands, and a line's centre vs wings.

* :func:`line_table` — per line of :data:`agnlens.lines.LINES` inside the grid, per Fe II band and
  continuum window of :data:`agnlens.lines.BANDS`, and per class: mean signed saliency, mean
  |saliency|, and the share of |saliency|.
* :func:`centre_wings` — the saliency around one line stacked in velocity space, its mean over the
  core and over the wings, and how often the two have opposite signs. The reference study found
  that the classifier weighs a line's centre and wings with opposite signs (in effect measuring
  the width); this function puts a number and an interval on that claim with fixed windows.
* :func:`centre_wings_test` — the same claim tested properly: windows per object from its measured
  narrow and broad FWHM, only spectra with a broad component (a type 2 has no wings: not
  testable), and a null test (the same window pairs at random places of the same maps) with its
  p-value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from agnlens.explain.saliency import Saliency
from agnlens.lines import BANDS, line as get_line, lines_in, velocity

#: Half widths (km/s) of the windows around lines in :func:`line_table`, by line kind: broad
#: permitted lines get room for their broad component, forbidden and absorption lines a narrow one.
LINE_HALF_WIDTH_KMS = {"broad": 3000.0, "narrow": 600.0, "absorption": 600.0}


def line_table(
    saliency: Saliency,
    *,
    half_width_kms: float | Mapping[str, float] | None = None,
    by: str = "target",
    bands: bool = True,
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
    widths = dict(LINE_HALF_WIDTH_KMS)
    if isinstance(half_width_kms, Mapping):
        widths.update(half_width_kms)
    elif half_width_kms is not None:
        widths = {kind: float(half_width_kms) for kind in ("broad", "narrow", "absorption")}
    wl = saliency.wavelength
    windows = []
    for item in lines_in(wl):
        hw = widths.get(item.kind, 600.0)
        lo = item.wavelength * (1 - hw / 299_792.458)
        hi = item.wavelength * (1 + hw / 299_792.458)
        windows.append((item.name, item.kind, lo, hi))
    if bands:
        for band in BANDS:
            if band.hi > wl[0] and band.lo < wl[-1]:
                windows.append((band.name, band.kind, max(band.lo, wl[0]), min(band.hi, wl[-1])))
    groups = _groups(saliency, by)
    values = saliency.values
    absval = np.abs(values)
    whole = absval.mean(axis=1)
    rows = []
    for cls, idx in groups.items():
        class_rows: list[dict[str, Any]] = []
        for name, kind, lo, hi in windows:
            sel = (wl >= lo) & (wl <= hi)
            if not np.any(sel):
                continue
            sub = values[np.ix_(idx, sel)]
            per_abs = np.abs(sub).mean(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                enrich = np.where(whole[idx] > 0, per_abs / whole[idx], np.nan)
            class_rows.append(
                {
                    "line": name,
                    "kind": kind,
                    "lo": float(lo),
                    "hi": float(hi),
                    "class": cls,
                    "mean_saliency": float(sub.mean()),
                    "mean_abs_saliency": float(per_abs.mean()),
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
        return out

    def mean_profile(self, cls: str) -> np.ndarray:
        """Mean stacked profile of class ``cls``, shape (n_velocities,)."""
        return self.profiles[cls].mean(axis=0)


def centre_wings(
    saliency: Saliency,
    line: str = "Hbeta",
    *,
    core_kms: float = 600.0,
    wing_kms: tuple[float, float] = (1000.0, 4000.0),
    by: str = "target",
    velocity_step: float = 50.0,
    n_boot: int = 1000,
    seed: int = 0,
) -> CentreWings:
    """Stack saliency around ``line`` in velocity space; compare its core with its wings.

    Parameters
    ----------
    saliency : Saliency
    line : str
        A line name of :data:`agnlens.lines.LINES` (``"Hbeta"``, ``"Halpha"``...); the window
        ±``wing_kms[1]`` must lie inside the grid.
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

    Returns
    -------
    CentreWings

    Notes
    -----
    Hα's wings contain [N II] 6550/6585 (−670 and +940 km/s) and Hβ's red wing reaches towards
    [O III] 4960 (+6000 km/s) only beyond the default wing range; the Hα numbers therefore mix the
    broad-line wings with [N II] (recorded in ``caveats``).
    """
    item = get_line(line)
    lo_v, hi_v = wing_kms
    if not (0 < core_kms <= lo_v < hi_v):
        raise ValueError(f"need 0 < core_kms ≤ wing_kms[0] < wing_kms[1], got {core_kms} and {wing_kms}")
    wl = saliency.wavelength
    v_pix = velocity(wl, item.wavelength)
    if v_pix[0] > -hi_v or v_pix[-1] < hi_v:
        raise ValueError(
            f"line {line} ± {hi_v:.0f} km/s ({item.wavelength * (1 - hi_v / 299792.458):.0f}–"
            f"{item.wavelength * (1 + hi_v / 299792.458):.0f} Å) is not inside the grid "
            f"{wl[0]:.0f}–{wl[-1]:.0f} Å; choose a line the grid covers or a smaller wing_kms"
        )
    v_max = hi_v + 2 * velocity_step
    vgrid = np.arange(-v_max, v_max + velocity_step / 2, velocity_step)
    stacked = np.array([np.interp(vgrid, v_pix, row) for row in saliency.values]).reshape(len(saliency), vgrid.size)
    core = np.abs(vgrid) < core_kms
    wings = (np.abs(vgrid) >= lo_v) & (np.abs(vgrid) <= hi_v)
    blue = wings & (vgrid < 0)
    red = wings & (vgrid > 0)
    rng = np.random.default_rng(seed)
    rows, profiles = [], {}
    for cls, idx in _groups(saliency, by).items():
        prof = stacked[idx]
        profiles[cls] = prof
        c = prof[:, core].mean(axis=1)
        w = prof[:, wings].mean(axis=1)
        opposite = np.sign(c) * np.sign(w) < 0
        c_lo, c_hi = _bootstrap(c, n_boot, rng)
        w_lo, w_hi = _bootstrap(w, n_boot, rng)
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
        profiles=profiles,
        table=pd.DataFrame(rows),
        core_kms=float(core_kms),
        wing_kms=(float(lo_v), float(hi_v)),
        caveats=caveats,
    )


#: Why spectra without a broad component are left out of :func:`centre_wings_test`.
UNTESTABLE_NOTE = ("only spectra with a measured broad component are tested: a type 2 (or any spectrum "
                   "without a broad line) has no wings, so centre vs wings is not testable there")

@dataclass
class CentreWingsTest:
    """Centre vs wings with windows from each object's measured widths, and its null test.

    Attributes
    ----------
    line : str
    table : pandas.DataFrame
        One row per tested spectrum: ``spec_id, class, fwhm_narrow, fwhm_broad, core_kms,
        wing_lo_kms, wing_hi_kms, centre_mean, wings_mean, opposite``.
    n_tested, n_opposite : int
        Spectra with a measured broad component (the only ones with wings), and how many of them
        have centre and wings of opposite signs.
    null_fraction : float
        The mean share of opposite signs when the same windows are placed at random elsewhere in
        the same maps (random window pairs).
    p_value : float
        One-sided: the share of ``n_draws`` random placements with at least ``n_opposite``
        opposite-sign spectra, (1 + k) / (1 + n_draws).
    centre_ci, wings_ci : (float, float)
        Bootstrap 95 % intervals of the mean centre and wing saliency over the tested spectra.
    n_untestable : int
        Spectra left out: no broad component was measured (type 2 have no wings to test).
    """

    line: str
    table: pd.DataFrame
    n_tested: int
    n_opposite: int
    null_fraction: float
    p_value: float
    n_draws: int
    centre_ci: tuple[float, float]
    wings_ci: tuple[float, float]
    n_untestable: int
    note: str = UNTESTABLE_NOTE

    @property
    def summary(self) -> dict:
        """JSON-friendly numbers for metrics.json and the report."""
        t = self.table
        return {
            "line": self.line, "n_tested": self.n_tested, "n_opposite": self.n_opposite,
            "opposite_fraction": self.n_opposite / self.n_tested if self.n_tested else None,
            "null_fraction": self.null_fraction, "p_value": self.p_value, "n_draws": self.n_draws,
            "centre_mean": float(t["centre_mean"].mean()) if len(t) else None, "centre_ci95": list(self.centre_ci),
            "wings_mean": float(t["wings_mean"].mean()) if len(t) else None, "wings_ci95": list(self.wings_ci),
            "n_untestable": self.n_untestable, "note": self.note,
        }


#: Lines (and Fe II 4925) kept out of Hβ's wings: ± the narrow FWHM ([O III] 4960) or 1,000 km/s (Fe II).
_WING_EXCLUSIONS = {"Hbeta": ((get_line("OIII_4960").wavelength, None), (4925.3, 1000.0)),
                    "Halpha": ((get_line("NII_6550").wavelength, None), (get_line("NII_6585").wavelength, None))}


def object_windows(wl: np.ndarray, line: str, fwhm_narrow: float, fwhm_broad: float) -> tuple[np.ndarray, np.ndarray]:
    """Core and wing pixels of one spectrum around ``line`` from its own measured widths.

    The core is |v| ≤ FWHM_narrow (the narrow line down to ~6 % of its peak); the wings are
    FWHM_broad / 2 ≤ |v| ≤ FWHM_broad (the broad line's outer half, from half maximum to ~6 %),
    starting at least two pixels beyond the core, without the pixels near the other lines of
    :data:`_WING_EXCLUSIONS` (Hβ: [O III] 4960, Fe II 4925; Hα: [N II]).

    Returns
    -------
    core, wings : ndarray of bool, shape (n_pixels,)
    """
    v = velocity(wl, get_line(line).wavelength)
    pix = float(np.median(np.abs(np.diff(v))))
    core_kms = max(float(fwhm_narrow) if np.isfinite(fwhm_narrow) else 500.0, 1.5 * pix)
    core = np.abs(v) <= core_kms
    lo = max(fwhm_broad / 2.0, core_kms + 2.0 * pix)
    wings = (np.abs(v) >= lo) & (np.abs(v) <= max(fwhm_broad, lo + 2.0 * pix))
    for centre, half in _WING_EXCLUSIONS.get(line, ()):
        wings &= np.abs(velocity(wl, centre)) > (half if half is not None else core_kms)
    return core, wings


def centre_wings_test(
    saliency: Saliency,
    widths: pd.DataFrame,
    line: str = "Hbeta",
    *,
    n_draws: int = 2000,
    n_boot: int = 1000,
    seed: int = 0,
) -> CentreWingsTest:
    """Do the classifier's maps weigh a line's centre and wings with opposite signs, per object?

    Each spectrum gets its own windows (:func:`object_windows`) from its measured narrow and broad
    FWHM, so a 7,000 km/s line's wings are its outer half, not its inner one. The statistic is the
    number of spectra whose mean core and mean wing saliency have opposite signs. The null test
    keeps every spectrum's windows and moves them, as a rigid pair, to a random place in the same
    map (``n_draws`` times): if opposite signs were just the map's wiggle at that scale, random
    pairs would show them as often.

    Parameters
    ----------
    saliency : Saliency
    widths : pandas.DataFrame
        Keyed by ``spec_id``, with the broad FWHM (``hb_fwhm_broad`` for Hβ, ``ha_fwhm_broad``
        for Hα; NaN: no broad component) and a narrow FWHM (``hb_fwhm_narrow`` /
        ``ha_fwhm_narrow``; missing: 500 km/s), in km/s, as :func:`agnlens.models.baseline.measure`
        gives them.
    line : {"Hbeta", "Halpha"}
    n_draws : int
        Random window placements of the null test.
    n_boot : int
        Bootstrap resamples for the intervals.
    seed : int

    Returns
    -------
    CentreWingsTest
    """
    prefix = {"Hbeta": "hb", "Halpha": "ha"}.get(line)
    if prefix is None:
        raise ValueError(f"centre_wings_test: line must be 'Hbeta' or 'Halpha', got {line!r}")
    broad_col, narrow_col = f"{prefix}_fwhm_broad", f"{prefix}_fwhm_narrow"
    if "spec_id" not in widths or broad_col not in widths:
        raise ValueError(f"centre_wings_test: widths needs columns spec_id and {broad_col} "
                         f"(agnlens.models.baseline.measure gives them), got {list(widths.columns)}")
    table = widths.drop_duplicates("spec_id").set_index(widths.drop_duplicates("spec_id")["spec_id"].astype(str))
    wl, values = saliency.wavelength, saliency.values
    n_pix = wl.size
    rng = np.random.default_rng(seed)
    rows, pairs = [], []
    n_untestable = 0
    for i, sid in enumerate(saliency.spec_id):
        broad = float(table[broad_col].get(sid, np.nan)) if sid in table.index else np.nan
        if not np.isfinite(broad):
            n_untestable += 1
            continue
        narrow = float(table[narrow_col].get(sid, np.nan)) if narrow_col in table else np.nan
        core, wings = object_windows(wl, line, narrow, broad)
        if not core.any() or not wings.any():
            n_untestable += 1
            continue
        c, w = float(values[i, core].mean()), float(values[i, wings].mean())
        v = velocity(wl, get_line(line).wavelength)
        rows.append({"spec_id": sid, "class": saliency.target[i], "fwhm_narrow": narrow, "fwhm_broad": broad,
                     "core_kms": float(np.abs(v[core]).max()), "wing_lo_kms": float(np.abs(v[wings]).min()),
                     "wing_hi_kms": float(np.abs(v[wings]).max()), "centre_mean": c, "wings_mean": w,
                     "opposite": bool(np.sign(c) * np.sign(w) < 0)})
        pairs.append((i, np.flatnonzero(core), np.flatnonzero(wings)))
    out = pd.DataFrame(rows, columns=["spec_id", "class", "fwhm_narrow", "fwhm_broad", "core_kms", "wing_lo_kms",
                                      "wing_hi_kms", "centre_mean", "wings_mean", "opposite"])
    n_opp = int(out["opposite"].sum())
    null = np.zeros(n_draws, dtype=int)
    for i, core_idx, wing_idx in pairs:
        lo = min(core_idx.min(), wing_idx.min())
        hi = max(core_idx.max(), wing_idx.max())
        shift = rng.integers(-lo, n_pix - hi, size=n_draws)  # the pair stays inside the map
        c = values[i][core_idx[None, :] + shift[:, None]].mean(axis=1)
        w = values[i][wing_idx[None, :] + shift[:, None]].mean(axis=1)
        null += (np.sign(c) * np.sign(w) < 0)
    n = len(out)
    return CentreWingsTest(
        line=line, table=out, n_tested=n, n_opposite=n_opp,
        null_fraction=float(null.mean() / n) if n else float("nan"),
        p_value=float((1 + np.sum(null >= n_opp)) / (1 + n_draws)) if n else float("nan"),
        n_draws=int(n_draws),
        centre_ci=_bootstrap(out["centre_mean"].to_numpy(), n_boot, rng),
        wings_ci=_bootstrap(out["wings_mean"].to_numpy(), n_boot, rng),
        n_untestable=n_untestable,
    )


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


def _groups(saliency: Saliency, by: str) -> dict[str, np.ndarray]:
    if by == "target":
        keys = saliency.target
    elif by == "label":
        keys = saliency.labels
    elif by == "predicted":
        keys = saliency.predicted
    else:
        raise ValueError(f"by must be 'target', 'label' or 'predicted', got {by!r}")
    groups = {}
    for cls in [str(c) for c in saliency.classes] + sorted(set(keys) - set(saliency.classes.astype(str))):
        idx = np.flatnonzero(keys == cls)
        if idx.size:
            groups[cls or "unlabelled"] = idx
    groups["all"] = np.arange(len(saliency))
    return groups


def _bootstrap(x: np.ndarray, n_boot: int, rng: np.random.Generator) -> tuple[float, float]:
    if x.size < 2 or n_boot < 1:
        return float("nan"), float("nan")
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


__all__ = ["CentreWings", "CentreWingsTest", "centre_wings", "centre_wings_test", "covered_lines",
           "line_table", "object_windows"]
