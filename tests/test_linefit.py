"""Tests of the batched line fits: the batched Levenberg–Marquardt against scipy, the batched
wing-aware fits against an independent per-spectrum scipy fit of the same model on the real
spectra in tests/data, and the verdicts the issue asks for on two of them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import least_squares

from agnlens.lines import C_KMS
from agnlens.models.linefit import BROAD_SIGMA, FWHM_PER_SIGMA, HALPHA, HBETA, fit_lines
from agnlens.models.linemodel import FEII_WIDTH_RATIO
from agnlens.models.lm import Bounds, levenberg_marquardt

from realdata import LABELS, SPECTRA


def test_batched_levenberg_marquardt_matches_scipy():
    """Many small bounded problems (a decaying exponential plus offset) solved at once agree with
    scipy's per-problem least_squares."""
    rng = np.random.default_rng(0)
    x = np.linspace(0.0, 4.0, 60)
    n = 40
    truth = np.column_stack([rng.uniform(1, 3, n), rng.uniform(0.3, 2.0, n), rng.uniform(-0.5, 0.5, n)])
    y = truth[:, :1] * np.exp(-truth[:, 1:2] * x) + truth[:, 2:] + rng.normal(0, 0.02, (n, x.size))
    bounds = Bounds(np.array([-np.inf, 0.05, -np.inf]), np.array([np.inf, 5.0, np.inf]))

    def evaluate(t, rows):
        p = bounds.phys(t)
        e = np.exp(-p[:, 1:2] * x)
        model = p[:, :1] * e + p[:, 2:]
        jac = np.stack([e, -p[:, :1] * x * e, np.ones_like(e)], axis=1) * bounds.dphys(t)[:, :, None]
        return model - y[rows], jac

    start = np.tile([1.0, 1.0, 0.0], (n, 1))
    t, chi2, _ = levenberg_marquardt(evaluate, bounds.free(start), ftol=1e-10)
    p = bounds.phys(t)
    for i in range(n):
        ref = least_squares(lambda q, yi=y[i]: q[0] * np.exp(-q[1] * x) + q[2] - yi, [1.0, 1.0, 0.0],
                            bounds=([-np.inf, 0.05, -np.inf], [np.inf, 5.0, np.inf]), xtol=1e-12, ftol=1e-12)
        assert chi2[i] <= 2 * ref.cost * (1 + 1e-6) + 1e-12
        np.testing.assert_allclose(p[i], ref.x, rtol=1e-4, atol=1e-5)


def _gauss(lam, centre, v, sigma):
    s = centre * sigma / C_KMS
    return np.exp(-0.5 * ((lam - centre * (1 + v / C_KMS)) / s) ** 2) / (np.sqrt(2 * np.pi) * s)


def _reference(lam, flux, ivar, cx, profile, broad):
    """The complex's model written out line by line and fitted by scipy, best of several starts.

    ``profile``: [O III]'s core velocity and σ, the wing's velocity offset, σ and share (observed
    widths, km/s). Parameters: continuum (polynomial of ``cx.continuum_order``), narrow fluxes,
    (broad flux, Fe II flux), the core's offset from [O III]'s and ratio to its width, (broad
    velocity and σ). Returns (χ², p, errors).
    """
    v0, s0, dv, sw, fw = profile
    good = ivar > 0
    lam, flux, w = lam[good], flux[good], np.sqrt(ivar[good])
    x = (lam - 0.5 * (cx.lo + cx.hi)) / 100.0
    k = cx.n_free_flux
    n_b = (1 + bool(cx.feii)) if broad else 0
    nc = cx.continuum_order + 1

    def model(q):
        off, ratio = q[nc + k + n_b], q[nc + 1 + k + n_b]
        out = sum(q[i] * x**i for i in range(nc))
        for centre, j, factor in cx.narrow:
            out = out + q[nc + j] * factor * ((1 - fw) * _gauss(lam, centre, v0 + off, s0 * ratio)
                                             + (fw * _gauss(lam, centre, v0 + dv, sw) if fw > 0 else 0.0))
        if broad:
            vb, sb = q[-2], q[-1]
            out = out + q[nc + k] * _gauss(lam, cx.broad_centre, vb, sb)
            if cx.feii:
                out = out + q[nc + 1 + k] * sum(st * _gauss(lam, c, 0.0, FEII_WIDTH_RATIO * sb) for c, st in cx.feii)
        return out

    lo = [-np.inf] * (nc + k + n_b) + [-200.0, 1 / 1.5] + ([-8000.0, BROAD_SIGMA[0]] if broad else [])
    hi = [np.inf] * (nc + k + n_b) + [200.0, 1.5] + ([8000.0, BROAD_SIGMA[1]] if broad else [])
    if broad and cx.feii:
        lo[nc + 1 + k] = 0.0
    best = None
    for sb in (1000.0, 2500.0, 5000.0) if broad else (None,):
        for vb in (-1500.0, 0.0, 1500.0) if broad else (None,):
            q0 = np.zeros(len(lo))
            q0[0], q0[nc + k + n_b], q0[nc + 1 + k + n_b] = np.median(flux), 0.0, 1.0
            q0[nc : nc + k] = 1.0
            if broad:
                q0[nc + k] = 10.0
                q0[-2:] = vb, sb
                if cx.feii:
                    q0[nc + 1 + k] = 0.1
            fit = least_squares(lambda q: w * (model(q) - flux), q0, bounds=(lo, hi), x_scale="jac",
                                ftol=1e-10, xtol=1e-10, max_nfev=2000)
            if best is None or fit.cost < best.cost:
                best = fit
    jac = best.jac
    err = np.sqrt(np.clip(np.diag(np.linalg.pinv(jac.T @ jac)), 0.0, None))
    return 2 * best.cost, best.x, err, good.sum()


@pytest.fixture(scope="module")
def real():
    from agnlens.stages import read_inputs

    spectra, _ = read_inputs([SPECTRA], grid="balmer", labels=LABELS)
    wl = np.asarray(spectra.wavelength, float)
    flux = np.asarray(spectra.flux, float)
    ivar = np.where(spectra.mask, 0.0, np.asarray(spectra.ivar, float))
    # instrumental σ 0: the widths are reported as observed, as the reference fits them
    return spectra, wl, flux, ivar, fit_lines(wl, flux, ivar, 0.0)


def test_batched_fits_agree_with_a_per_spectrum_scipy_reference(real):
    """Each real spectrum of tests/data, each complex, with and without its broad line: scipy's
    least_squares (several starts, numerical Jacobian, the model written out independently) on the
    same model given the [O III] profile reaches the same evidence and, where a broad line is
    found, the same broad flux and width and narrow flux within their errors."""
    spectra, wl, flux, ivar, fits = real
    shared = fits["shared"]
    checked = agree = lines = same_line = 0
    misses = []
    for i in range(len(spectra)):
        has_wing = shared["wing_fraction"][i] > 0
        sigma_core = shared["narrow_fwhm"][i] / FWHM_PER_SIGMA
        profile = (shared["narrow_velocity"][i], sigma_core, shared["wing_velocity"][i] if has_wing else 0.0,
                   shared["wing_fwhm"][i] / FWHM_PER_SIGMA if has_wing else 1.0, shared["wing_fraction"][i])
        if not np.all(np.isfinite(profile)):
            continue
        for cx in (HBETA, HALPHA):
            res = fits[cx.name]
            if not np.isfinite(res["delta_bic"][i]):
                continue
            sel = (wl >= cx.lo) & (wl <= cx.hi)
            chi2_null, _, _, n = _reference(wl[sel], flux[i, sel], ivar[i, sel], cx, profile, False)
            chi2_full, q, err, _ = _reference(wl[sel], flux[i, sel], ivar[i, sel], cx, profile, True)
            chi2_b = min(chi2_full, chi2_null)
            s2 = max(chi2_b / (n - q.size - 3), 1.0)
            dbic = (chi2_null - chi2_b) / s2 - (3 + bool(cx.feii)) * np.log(n)
            checked += 1
            ok = abs(res["delta_bic"][i] - dbic) <= max(3.0, 0.1 * abs(dbic))
            agree += bool(ok)
            k = cx.n_free_flux
            nc = cx.continuum_order + 1
            fb, fb_err = q[nc + k], err[nc + k] * np.sqrt(s2)
            if dbic > 10 and res["delta_bic"][i] > 10 and fb > 0 and res["flux_broad"][i] > 0:
                # a broad emission line both find: the same line, within the errors
                lines += 1
                fwhm, fwhm_err = FWHM_PER_SIGMA * q[-1], FWHM_PER_SIGMA * err[-1] * np.sqrt(s2)
                same = abs(res["flux_broad"][i] - fb) <= 2 * max(fb_err, res["flux_broad_err"][i]) + 0.01 * fb
                same &= abs(res["fwhm_broad"][i] - fwhm) <= 2 * max(fwhm_err, res["fwhm_broad_err"][i]) + 0.01 * fwhm
                same &= abs(res["flux_narrow_0"][i] - max(q[nc], 0.0)) <= 2 * max(err[nc] * np.sqrt(s2),
                                                                                  res["flux_narrow_err_0"][i])
                same_line += bool(same)
            if not ok:
                misses.append((spectra.spec_id[i], cx.name, round(res["delta_bic"][i], 1), round(dbic, 1)))
    assert checked >= 30 and lines >= 20
    assert same_line >= 0.9 * lines, (same_line, lines)
    # The evidence agrees on most; where not, one of the two fits sits in a local minimum the other
    # escaped (a narrow absorption trough at the width bound, a very broad line's valley) — the
    # reference is not always the better one (4414-55882-0184's Hβ).
    assert agree >= 0.75 * checked, (agree, checked, misses)


def test_the_wing_aware_verdicts_on_two_real_spectra(real):
    """Issue 23: the real type 2 0565-52225-0263, whose [O III] wing the old fit took for a
    1,773 km/s broad Hα, gets no broad line; the secure 1.9 0725-52258-0580 keeps its broad Hα at a
    ΔBIC far above the threshold (and no broad Hβ)."""
    from agnlens.models.baseline import PhysicsBaseline

    spectra = real[0]
    ids = list(spectra.spec_id)
    rows = [ids.index("0565-52225-0263"), ids.index("0725-52258-0580")]
    table = PhysicsBaseline().fit(spectra).measure(spectra[np.array(rows)])
    type2, seyfert19 = table.iloc[0], table.iloc[1]
    assert not type2["hb_broad"] and not type2["ha_broad"] and type2["subtype"] == "2"
    assert seyfert19["ha_broad"] and seyfert19["ha_delta_bic"] > 100 and seyfert19["subtype"] == "1.9"


def _same_table(a, b, what):
    """Every column of two tables equal: floats within 1e-6 relative (the reproducibility
    tolerance), everything else (labels, flags, bounds hit) identical."""
    assert list(a.columns) == list(b.columns), what
    for col in a.columns:
        x, y = a[col].to_numpy(), b[col].to_numpy()
        if x.dtype.kind == "f":
            np.testing.assert_allclose(y, x, rtol=1e-6, atol=1e-12, err_msg=f"{what}: {col}")
        else:
            assert [str(v) for v in x] == [str(v) for v in y], f"{what}: {col}"


def test_a_spectrum_fits_the_same_alone_and_in_any_batch():
    """docs/reproducing.md: a spectrum's measurements do not depend on the other spectra fitted with
    it. The real spectra of tests/data measured one by one, all together, shuffled and split into
    uneven blocks give every column of ``measure()`` and of the baseline's full table within 1e-6
    relative, and the same labels and flags."""
    import warnings

    from agnlens.errors import AgnlensWarning
    from agnlens.models.baseline import PhysicsBaseline, measure
    from agnlens.stages import read_inputs

    spectra, _ = read_inputs([SPECTRA], grid="balmer", labels=LABELS)
    n = len(spectra)
    perm = np.random.default_rng(7).permutation(n)
    back = np.argsort(perm)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AgnlensWarning)  # a spectrum without Hβ pixels, if any
        base = PhysicsBaseline().fit(spectra)
        together = base.measure(spectra)
        alone = pd.concat([base.measure(spectra[np.array([i])]) for i in range(n)], ignore_index=True)
        split = pd.concat([base.measure(spectra[b]) for b in (perm[:5], perm[5:])], ignore_index=True).iloc[back]
        columns = measure(spectra)
        shuffled = measure(spectra[perm]).iloc[back]
    _same_table(together, alone, "alone")
    _same_table(together, split.reset_index(drop=True), "shuffled, split 5 + 14")
    _same_table(columns, shuffled.reset_index(drop=True), "measure(), shuffled")
