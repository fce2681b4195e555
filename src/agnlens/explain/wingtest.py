"""Centre vs wings tested per object: windows from each spectrum's measured narrow and broad FWHM,
only spectra with a broad component (a type 2 has no wings: not testable), and a null test (the
same window pairs at random places of the same maps) with its p-value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from agnlens.explain.attribution import Saliency
from agnlens.explain.linestats import bootstrap_ci
from agnlens.lines import line as get_line, velocity

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

    The core is ``|v| ≤ FWHM_narrow`` (the narrow line down to ~6 % of its peak); the wings are
    ``FWHM_broad / 2 ≤ |v| ≤ FWHM_broad`` (the broad line's outer half, from half maximum to ~6 %),
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
        centre_ci=bootstrap_ci(out["centre_mean"].to_numpy(), n_boot, rng),
        wings_ci=bootstrap_ci(out["wings_mean"].to_numpy(), n_boot, rng),
        n_untestable=n_untestable,
    )


__all__ = ["CentreWingsTest", "UNTESTABLE_NOTE", "centre_wings_test", "object_windows"]
