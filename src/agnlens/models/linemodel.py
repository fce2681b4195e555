"""The emission-line model behind the physics baseline: line windows, the wing-aware narrow
profile, broad Gaussians and Fe II, with analytic Jacobians for a batch of spectra.

Every narrow line ([O III] 4960/5008, Hβ, Hα, [N II] 6550/6585) has one shared profile — a core
Gaussian plus a wing Gaussian (an outflow: its own velocity and width, and a wing/total flux
ratio) — so that a narrow-line wing cannot pass for a broad line; only the line fluxes differ (the
doublet ratios 4960/5008 = 1/2.98 and 6550/6585 = 1/3.05 are fixed). [S II] 6718/6733 is not
fitted: the ``balmer`` grid ends at 6700 Å. :class:`LineModel` evaluates the narrow lines of some
windows for many spectra at once; :mod:`agnlens.models.linefit` fits the broad lines with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agnlens.lines import C_KMS, FWHM_PER_SIGMA, line
from agnlens.models.lm import Bounds, levenberg_marquardt

__all__ = [
    "AT_BOUND", "BROAD_SIGMA", "BROAD_VELOCITY", "COMPLEXES", "FEII_WIDTH_RATIO", "FWHM_PER_SIGMA", "HALPHA",
    "HBETA", "LineComplex", "LineModel", "MIN_GOOD_FRACTION", "NARROW_SIGMA", "OIII_PROFILE", "SHARED",
    "WING_SIGMA", "covers", "gaussians",
]

# Ranges of the non-linear parameters (km/s). Chosen so that no real spectrum of the reference
# sample ends at one; a fit that does is named in ``at_bound``.
#: σ of the narrow core (FWHM 47–1,000 km/s: up to where a broad line starts).
NARROW_SIGMA = (20.0, 425.0)
NARROW_VELOCITY = 600.0
#: σ of the narrow lines' wing (FWHM 235–2,830 km/s: [O III] outflows).
WING_SIGMA = (100.0, 1200.0)
#: Wing velocity relative to the core.
WING_VELOCITY = 1500.0
WING_FRACTION = (0.0, 0.95)
#: σ of a broad line (FWHM 1,000–20,020 km/s): the simulator draws broad Hβ up to FWHM 16,000 km/s
#: with wings, which a single Gaussian fits broader still, and real Balmer lines reach ~15,000 km/s.
BROAD_SIGMA = (425.0, 8500.0)
BROAD_VELOCITY = 8000.0
# Starting widths (km/s): narrow core and wing; the broad line starts from what the narrow
# start leaves under it, within these σ.
_CORE_START, _WING_START, _WING_FRACTION_START = 150.0, 500.0, 0.2
#: Least fraction of good pixels a fitting window needs.
MIN_GOOD_FRACTION = 0.5
#: A non-linear parameter within this fraction of its range from a bound is "at the bound".
AT_BOUND = 0.01
#: Fe II lines are narrower than broad Hβ: FWHM(Fe II) ≈ 3/4 FWHM(Hβ) (Hu et al. 2008, ApJ 687, 78).
FEII_WIDTH_RATIO = 0.75
# Spectra fitted together (bounds the Jacobian's memory: ~20 parameters × ~700 pixels each).
_CHUNK = 256


@dataclass(frozen=True)
class LineComplex:
    """One window ``lo``–``hi`` Å fitted with its own linear continuum.

    ``narrow`` lists ``(wavelength, free_flux_index, flux_factor)``: lines with the same index share
    one flux parameter scaled by the factor (fixed doublet ratios). ``broad_centre`` is the broad
    line's rest wavelength (None: no broad line). ``feii`` lists ``(wavelength, relative strength)``
    of Fe II lines fitted as one component with the broad line's velocity and
    :data:`FEII_WIDTH_RATIO` times its width (empty: no Fe II). The continuum is a polynomial
    of ``continuum_order`` in the wavelength.
    """

    name: str
    lo: float
    hi: float
    narrow: tuple[tuple[float, int, float], ...]
    n_free_flux: int
    broad_centre: float | None
    feii: tuple[tuple[float, float], ...] = ()
    continuum_order: int = 1

    def primary(self, j: int) -> float:
        """Rest wavelength of the line that carries free flux ``j`` at factor 1."""
        return next(c for c, idx, f in self.narrow if idx == j and f == 1.0)


# Fe II multiplets 42 and 37/38 inside the Hβ window (vacuum Å; relative strengths of the
# Boroson & Green 1992 template's lines, as in the simulator's template): the 4924 and 5018 lines
# sit in Hβ's red wing and under [O III], where an unmodelled Fe II would be taken for broad Hβ.
_FEII_HBETA = ((4668.1, 0.2), (4925.3, 0.8), (5019.8, 1.0))

#: Hβ + [O III]: the 4960/5008 ratio is fixed at 1/2.98 (atomic physics); Fe II 4667/4924/5018.
HBETA = LineComplex(
    "hbeta", 4640.0, 5080.0,
    ((line("Hbeta").wavelength, 0, 1.0), (line("OIII_5008").wavelength, 1, 1.0),
     (line("OIII_4960").wavelength, 1, 1.0 / 2.98)),
    2, line("Hbeta").wavelength, _FEII_HBETA,
)
#: Hα + [N II] + [O I]: the 6550/6585 ratio is fixed at 1/3.05, 6365/6302 at 1/3 (atomic physics).
#: The window reaches 6200 Å (−17,000 km/s) because the grid ends at 6700 Å (+6,000 km/s): over
#: the old 6400–6690 Å a broad Hα of FWHM ≳ 10,000 km/s traded its flux with the continuum slope
#: (flux S/N < 2 at ΔBIC in the hundreds) and its width went to the bound. Over 490 Å a host's
#: continuum bends: a quadratic continuum, else a linear one leaves a hump a broad line takes
#: (measured: 24 of 385 simulated type 2 then showed a "broad Hα" at −4,000 to −7,500 km/s).
HALPHA = LineComplex(
    "halpha", 6200.0, 6690.0,
    ((line("Halpha").wavelength, 0, 1.0), (line("NII_6585").wavelength, 1, 1.0),
     (line("NII_6550").wavelength, 1, 1.0 / 3.05), (line("OI_6302").wavelength, 2, 1.0),
     (line("OI_6365").wavelength, 2, 1.0 / 3.0)),
    3, line("Halpha").wavelength, continuum_order=2,
)
#: Every complex with a broad line, in the order they are fitted.
COMPLEXES = (HBETA, HALPHA)
#: The window that sets the shared narrow profile: [O III] 4960/5008 (the strongest narrow lines,
#: with no broad component), over a quadratic continuum that takes up broad Hβ's red wing and Fe II.
OIII_PROFILE = LineComplex(
    "oiii", 4935.0, 5060.0,
    ((line("OIII_5008").wavelength, 0, 1.0), (line("OIII_4960").wavelength, 0, 1.0 / 2.98)), 1, None,
    _FEII_HBETA[1:], continuum_order=2,
)
#: σ (km/s) of the Fe II 4925/5020 lines under [O III] while the profile is fitted (a typical Fe II
#: width, FWHM ≈ 3,000 km/s): else the wing takes Fe II 5020 for an outflow.
FEII_PROFILE_SIGMA = 1300.0
#: The shared narrow-profile parameters.
SHARED = ("narrow_velocity", "narrow_sigma", "wing_velocity", "wing_sigma", "wing_fraction")


def covers(wl: np.ndarray, cx: LineComplex) -> bool:
    """Whether the grid ``wl`` (Å, rest frame) spans the complex's window."""
    step = np.median(np.diff(wl))
    return bool(wl[0] <= cx.lo + step and wl[-1] >= cx.hi - step)


def gaussians(lam: np.ndarray, centre: float, v: np.ndarray, sigma: np.ndarray, derivatives: bool = True):
    """Unit-flux Gaussians (n, n_pix) at ``centre`` shifted by ``v`` km/s with σ ``sigma`` km/s
    (both shape (n,)), and (``derivatives``) their derivatives with respect to ``v`` and ``sigma``
    (else the Gaussians alone)."""
    mu = centre * (1.0 + v / C_KMS)
    s = centre * sigma / C_KMS
    u = np.subtract(lam, mu[:, None])
    u /= s[:, None]
    g = np.square(u)
    g *= -0.5
    np.exp(g, out=g)
    g *= (1.0 / (np.sqrt(2.0 * np.pi) * s))[:, None]
    if not derivatives:
        return g
    gs = g * ((centre / C_KMS) / s)[:, None]
    g_v = gs * u
    np.square(u, out=u)
    u -= 1.0
    u *= gs
    return g, g_v, u


class LineModel:
    """The narrow lines of some windows with the shared profile, for many spectra at once.

    Parameters
    ----------
    wl : ndarray of shape (n_grid,)
        Rest-frame wavelengths (Å).
    complexes : sequence of LineComplex
        The windows fitted (each must lie on the grid); their broad lines are not modelled here.
    wing : bool
        Whether the profile has a wing (else one Gaussian: :data:`SHARED`'s wing parameters are
        not fitted).

    Attributes
    ----------
    names : list of str
        Parameter names, e.g. ``oiii_c0``, ``oiii_flux_0``, ``narrow_sigma``, ``wing_fraction``.
    pixels : ndarray of int
        Indices into ``wl`` of the fitted pixels (the windows, concatenated).
    bounds : Bounds
    """

    def __init__(self, wl: np.ndarray, complexes, wing: bool = True) -> None:
        self.complexes = tuple(complexes)
        self.wing = wing
        names: list[str] = []
        lo: list[float] = []
        hi: list[float] = []

        def add(name, low=-np.inf, high=np.inf):
            names.append(name)
            lo.append(low)
            hi.append(high)

        pixels, self.slices, start = [], [], 0
        for cx in self.complexes:
            idx = np.flatnonzero((wl >= cx.lo) & (wl <= cx.hi))
            pixels.append(idx)
            self.slices.append(slice(start, start + idx.size))
            start += idx.size
            for order in range(cx.continuum_order + 1):
                add(f"{cx.name}_c{order}")
            for j in range(cx.n_free_flux):
                add(f"{cx.name}_flux_{j}", 0.0)
            if cx.feii:
                add(f"{cx.name}_feii_flux")
        add("narrow_velocity", -NARROW_VELOCITY, NARROW_VELOCITY)
        add("narrow_sigma", *NARROW_SIGMA)
        if wing:
            add("wing_velocity", -WING_VELOCITY, WING_VELOCITY)
            add("wing_sigma", *WING_SIGMA)
            add("wing_fraction", *WING_FRACTION)
        self.names = names
        self.index = {n: i for i, n in enumerate(names)}
        self.bounds = Bounds(np.array(lo), np.array(hi))
        self.pixels = np.concatenate(pixels)
        self.lam = wl[self.pixels]
        self.x = np.empty(self.lam.size)
        for cx, sl in zip(self.complexes, self.slices, strict=True):
            self.x[sl] = (self.lam[sl] - 0.5 * (cx.lo + cx.hi)) / 100.0

    def profile(self, p: np.ndarray) -> np.ndarray:
        """The shared profile (n, 5) in the order of :data:`SHARED` (no wing: fraction 0)."""
        ix = self.index
        if self.wing:
            return p[:, [ix[k] for k in SHARED]]
        n = p.shape[0]
        return np.stack([p[:, ix["narrow_velocity"]], p[:, ix["narrow_sigma"]], np.zeros(n),
                         np.full(n, WING_SIGMA[0]), np.zeros(n)], axis=1)

    def evaluate(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Model flux (n, n_pix) and its Jacobian, transposed, (n, n_params, n_pix) at the physical
        parameters ``p`` of shape (n, n_params)."""
        ix = self.index
        n = p.shape[0]
        model = np.zeros((n, self.lam.size))
        jac = np.zeros((n, len(self.names), self.lam.size))
        vc, sc, dv, sw, fw = self.profile(p).T
        core_w, wing_w = (1.0 - fw)[:, None], fw[:, None]
        for cx, sl in zip(self.complexes, self.slices, strict=True):
            lam, x = self.lam[sl], self.x[sl]
            for order in range(cx.continuum_order + 1):
                i = ix[f"{cx.name}_c{order}"]
                model[:, sl] += p[:, i, None] * x**order
                jac[:, i, sl] = x**order
            if cx.feii:
                i = ix[f"{cx.name}_feii_flux"]
                zero, width = np.zeros(1), np.full(1, FEII_PROFILE_SIGMA)
                template = sum(strength * gaussians(lam, centre, zero, width, False)[0] for centre, strength in cx.feii)
                model[:, sl] += p[:, i, None] * template
                jac[:, i, sl] = template
            for centre, j, factor in cx.narrow:
                i_f = ix[f"{cx.name}_flux_{j}"]
                flux = (factor * p[:, i_f])[:, None]
                gc, gc_v, gc_s = gaussians(lam, centre, vc, sc)
                if not self.wing:
                    model[:, sl] += flux * gc
                    jac[:, i_f, sl] += factor * gc
                    jac[:, ix["narrow_velocity"], sl] += flux * gc_v
                    jac[:, ix["narrow_sigma"], sl] += flux * gc_s
                    continue
                gw, gw_v, gw_s = gaussians(lam, centre, vc + dv, sw)
                profile = core_w * gc + wing_w * gw
                model[:, sl] += flux * profile
                jac[:, i_f, sl] += factor * profile
                wing_v = flux * wing_w * gw_v
                jac[:, ix["narrow_velocity"], sl] += flux * core_w * gc_v + wing_v
                jac[:, ix["narrow_sigma"], sl] += flux * core_w * gc_s
                jac[:, ix["wing_velocity"], sl] += wing_v
                jac[:, ix["wing_sigma"], sl] += flux * wing_w * gw_s
                jac[:, ix["wing_fraction"], sl] += flux * (gw - gc)
        return model, jac

    def start(self, data: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """A physical starting point (n, n_params) for spectra ``data`` (n, n_pix) on the model's
        pixels with weights ``weight`` (0: bad pixel): straight continua through each window's
        edges, the profile at the strongest narrow line's peak, the fluxes from the peak heights."""
        ix = self.index
        n = data.shape[0]
        p = np.zeros((n, len(self.names)))
        good = weight > 0
        best_peak = np.full(n, -np.inf)
        p[:, ix["narrow_sigma"]] = _CORE_START
        if self.wing:
            p[:, ix["wing_sigma"]], p[:, ix["wing_fraction"]] = _WING_START, _WING_FRACTION_START
            p[:, ix["wing_velocity"]] = -100.0
        for cx, sl in zip(self.complexes, self.slices, strict=True):
            lam, x, d, m = self.lam[sl], self.x[sl], data[:, sl], good[:, sl]
            edge = ((lam < cx.lo + 40.0) | (lam > cx.hi - 30.0)) & m
            edge = np.where(edge.sum(axis=1, keepdims=True) >= 4, edge, m)
            c0, c1 = _line_fit(x, d, edge)
            p[:, ix[f"{cx.name}_c0"]], p[:, ix[f"{cx.name}_c1"]] = c0, c1
            resid = d - (c0[:, None] + c1[:, None] * x)
            for j in range(cx.n_free_flux):
                centre = cx.primary(j)
                near = np.abs(lam - centre) < centre * 300.0 / C_KMS
                r = np.where(m[:, near], resid[:, near], -np.inf)
                k = np.argmax(r, axis=1)
                peak = np.maximum(r[np.arange(n), k], 0.0)
                p[:, ix[f"{cx.name}_flux_{j}"]] = peak * np.sqrt(2.0 * np.pi) * centre * _CORE_START / C_KMS
                stronger = peak > best_peak
                best_peak = np.where(stronger, peak, best_peak)
                v = (lam[near][k] / centre - 1.0) * C_KMS
                p[:, ix["narrow_velocity"]] = np.where(stronger, v, p[:, ix["narrow_velocity"]])
        return p

    def fit(self, p0: np.ndarray, data: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Least-squares fit of every spectrum from the physical start ``p0``: (p, χ²)."""
        bounds = self.bounds

        def evaluate(t, rows):
            model, jac = self.evaluate(bounds.phys(t))
            w = weight[rows]
            jac *= w[:, None, :]
            jac *= bounds.dphys(t)[:, :, None]
            return w * (model - data[rows]), jac

        # evaluate receives the rows' own parameters: the model has no per-spectrum state
        t, chi2, _ = levenberg_marquardt(evaluate, bounds.free(p0), max_iter=200, ftol=1e-6)
        return bounds.phys(t), chi2


def _line_fit(x: np.ndarray, d: np.ndarray, m: np.ndarray):
    """Least-squares straight lines ``c0 + c1 x`` through the pixels ``m`` of each row of ``d``."""
    mf = m.astype(float)
    # sums along each row (not matrix-vector products, whose bits depend on the other rows)
    s0, s1, s2 = mf.sum(axis=1), (mf * x).sum(axis=1), (mf * (x * x)).sum(axis=1)
    t0, t1 = (mf * d).sum(axis=1), (mf * d * x).sum(axis=1)
    det = s0 * s2 - s1 * s1
    ok = det > 0
    c1 = np.divide(s0 * t1 - s1 * t0, det, out=np.zeros_like(det), where=ok)
    c0 = np.divide(t0 - c1 * s1, s0, out=np.zeros_like(det), where=s0 > 0)
    return c0, c1

