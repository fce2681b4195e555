"""The noise-free observed spectrum of a block of parameter sets.

The rest-frame model, in units of the (host + AGN) continuum at 5100 Å, is

    F(λ) = h·host(λ) + (1 − h)·(λ/5100)^α·D_AGN(λ) + narrow(λ) + broad(λ) + BaC(λ) + FeII(λ)

with ``host`` the reddened stellar-population mix (:mod:`.host`), D_AGN the nuclear dust
(Cardelli law, also applied to the broad lines, the Balmer continuum and Fe II), then redshifted
(λ·(1+z), F/(1+z)), multiplied by a flux scale and a spectrophotometric tilt. Every component is
laid on a padded log-λ pixel grid (lines as sticks split linearly between the two nearest pixels:
centroid and flux exact, ≤ 0.25 px² of extra variance) and convolved by FFT with a Gaussian in
velocity — the stellar dispersion, the line widths, each with the instrumental resolution — in
eight groups: host, narrow, narrow-line wing, Fe II, broad blue core (with the Balmer continuum and
the high-order Balmer lines), broad blue wing, broad red core, broad red wing. Blocks of 64
spectra are modelled at once; each row depends only on its own parameters.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from agnlens.lines import C_KMS, FWHM_PER_SIGMA
from agnlens.simulate.agn import BALMER_BLEND, BROAD_LINES, BROAD_RED, HIGH_BALMER, balmer_continuum, feii_template
from agnlens.simulate.dust import cardelli
from agnlens.simulate.host import TEMPLATE_SIGMA_KMS, mix_hosts
from agnlens.simulate.instrument import DLOGLAM, KMS_PER_PIXEL, LOGLAM0, N_PIX, REST_LOGLAM, observed_grid
from agnlens.simulate.narrow import NARROW_LINES

__all__ = ["models"]

_PAD = 640  # pixels of margin either side, so that lines just outside the range spill in
_NFFT = 6144  # >= N_PIX + 2 * _PAD; 2^11·3 is FFT-friendly
_N_GROUPS = 8
_WAVE = observed_grid()
_FREQ2 = np.fft.rfftfreq(_NFFT) ** 2  # (cycles per pixel)²
# Broad lines are never narrower than σ = 250 km/s (FWHM ≥ 1,200 km/s for type 1, ≥ 1,000 km/s for
# intermediate Hα and ≥ 600 km/s for their Hβ; clamped anyway); a Gaussian kernel of σ pixels is
# < 1e-10 above 1.08/σ cycles.
_BROAD_MIN_SIGMA = 250.0 / KMS_PER_PIXEL
_N_BROAD_FREQ = int(np.ceil(1.08 / _BROAD_MIN_SIGMA * _NFFT)) + 1

_NARROW_NAMES = tuple(NARROW_LINES)
_NARROW_WL = np.array(list(NARROW_LINES.values()))
_BLUE = tuple(k for k in BROAD_LINES if k not in BROAD_RED)
_BLUE_WL = np.array([BROAD_LINES[k] for k in _BLUE] + [w for w, _ in HIGH_BALMER])
_RED_WL = np.array([BROAD_LINES[k] for k in BROAD_RED])
_HIGH_I = np.array([i for _, i in HIGH_BALMER])
_BLEND = np.array([w < BALMER_BLEND for w, _ in HIGH_BALMER])
_K5100 = float(cardelli(np.array([5100.0]))[0])


def _sticks(group: int, rest_wl: np.ndarray, values: np.ndarray, z: np.ndarray, shift_kms: np.ndarray):
    """Flat indices and weights of sticks ``values`` (n_block, n_lines) of ``group``.

    Each stick is split linearly between its two neighbouring log-λ pixels (centroid exact);
    ``dens = value / Δλ_pixel(rest)`` so that the integral over rest-frame Å equals ``value``.
    """
    n_block = values.shape[0]
    obs = rest_wl[None, :] * ((1.0 + z) * (1.0 + shift_kms / C_KMS))[:, None]
    pos = (np.log10(obs) - LOGLAM0) / DLOGLAM + _PAD
    dens = values / (rest_wl[None, :] * np.log(10.0) * DLOGLAM)
    i = np.floor(pos).astype(np.int64)
    f = pos - i
    keep = (i >= 0) & (i < _NFFT - 1) & (values != 0)
    base = (np.arange(n_block)[:, None] * _N_GROUPS + group) * _NFFT
    idx = (base + i)[keep]
    return np.concatenate([idx, idx + 1]), np.concatenate([(dens * (1.0 - f))[keep], (dens * f)[keep]])


def _col(params: list[dict[str, Any]], key: str) -> np.ndarray:
    return np.array([p[key] for p in params], dtype=np.float64)


@lru_cache(maxsize=1)
def _rest_tables() -> dict[str, np.ndarray]:
    """Tables on the rest-frame grid: Cardelli k(λ) − k(5100), Balmer continuum, Fe II (0 outside)."""
    wave = 10.0**REST_LOGLAM
    grid, flux, _ = feii_template()
    feii = np.interp(REST_LOGLAM, grid, flux, left=0.0, right=0.0)
    return {"cardelli": cardelli(wave) - _K5100, "bac": balmer_continuum(wave), "feii": feii}


def _reddening(ebv: np.ndarray, wave: np.ndarray) -> np.ndarray:
    """10^(−0.4·E·(k(λ) − k(5100))) of the lines at ``wave`` (n,) for each row's E(B−V)."""
    return 10.0 ** (-0.4 * ebv[:, None] * (cardelli(wave) - _K5100)[None, :])


def models(params: list[dict[str, Any]]) -> np.ndarray:
    """Noise-free observed flux of a block of spectra, shape (n_block, N_PIX)."""
    nb = len(params)
    z = _col(params, "z")
    e_agn = _col(params, "ebv_agn")
    # every padded pixel's place on the rest-frame table grid: a constant fractional offset per row
    pos = (LOGLAM0 - REST_LOGLAM[0] - np.log10(1.0 + z)) / DLOGLAM - _PAD
    start = np.floor(pos).astype(np.int64)
    frac = (pos - start)[:, None]
    index = np.clip(start[:, None] + np.arange(_NFFT)[None, :], 0, REST_LOGLAM.size - 2)
    tables = _rest_tables()

    def table(name: str) -> np.ndarray:
        return tables[name][index] * (1.0 - frac) + tables[name][index + 1] * frac

    red_agn = 10.0 ** (-0.4 * e_agn[:, None] * table("cardelli"))

    narrow = np.array([[p["narrow"][k] for k in _NARROW_NAMES] for p in params])
    wing_share, wing_width, wing_v = (np.array([p["narrow_wing"][j] for p in params]) for j in range(3))
    n_shift = _col(params, "narrow_shift")
    red_blue = _reddening(e_agn, _BLUE_WL)
    red_red = _reddening(e_agn, _RED_WL)
    blue = np.concatenate([np.array([[p["broad"][k] for k in _BLUE] for p in params]),
                           _col(params, "high_balmer_scale")[:, None] * _HIGH_I[None, :]
                           * np.where(_BLEND[None, :], _col(params, "balmer_blend")[:, None], 1.0)], axis=1) * red_blue
    redl = np.array([[p["broad"][k] for k in BROAD_RED] for p in params]) * red_red
    bw_share, bw_width, bw_v = (np.array([p["broad_wing"][j] for p in params]) for j in range(3))
    shift = _col(params, "broad_shift")
    entries = [
        _sticks(1, _NARROW_WL, narrow * (1.0 - wing_share[:, None]), z, n_shift),
        _sticks(2, _NARROW_WL, narrow * wing_share[:, None], z, n_shift + wing_v),
        _sticks(4, _BLUE_WL, blue * (1.0 - bw_share[:, None]), z, shift),
        _sticks(5, _BLUE_WL, blue * bw_share[:, None], z, shift + bw_v),
        _sticks(6, _RED_WL, redl * (1.0 - bw_share[:, None]), z, shift),
        _sticks(7, _RED_WL, redl * bw_share[:, None], z, shift + bw_v),
    ]
    idx = np.concatenate([e[0] for e in entries])
    wts = np.concatenate([e[1] for e in entries])
    layers = np.bincount(idx, wts, minlength=nb * _N_GROUPS * _NFFT).reshape(nb, _N_GROUPS, _NFFT)
    h = _col(params, "host_fraction")
    layers[:, 0] = h[:, None] * mix_hosts(params, index, frac)
    layers[:, 4] += _col(params, "balmer_continuum")[:, None] * table("bac") * red_agn
    hb_b = np.array([p["broad"]["Hbeta"] for p in params])
    layers[:, 3] = (_col(params, "feii_ratio") * hb_b)[:, None] * table("feii") * red_agn

    s_inst = _col(params, "sigma_inst")
    s_n = _col(params, "fwhm_narrow") / FWHM_PER_SIGMA
    s_b = _col(params, "fwhm_broad") / FWHM_PER_SIGMA
    s_r = _col(params, "fwhm_broad_halpha") / FWHM_PER_SIGMA
    s_b = np.where(s_b > 0, s_b, s_r)  # a type 1.9 has no broad Hβ: its (empty) blue layers follow Hα
    _, _, feii_fwhm = feii_template()
    sig = np.stack([
        np.sqrt(np.maximum(_col(params, "sigma_star") ** 2 + s_inst**2 - TEMPLATE_SIGMA_KMS**2, 1.0)),
        np.hypot(s_n, s_inst),
        np.hypot(s_n * wing_width, s_inst),
        np.sqrt(np.maximum((_col(params, "feii_fwhm") / FWHM_PER_SIGMA) ** 2 - (feii_fwhm / FWHM_PER_SIGMA) ** 2, 0.0)
                + s_inst**2),
        np.hypot(s_b, s_inst),
        np.hypot(s_b * bw_width, s_inst),
        np.hypot(s_r, s_inst),
        np.hypot(s_r * bw_width, s_inst),
    ], axis=1) / KMS_PER_PIXEL  # (nb, groups), pixels
    # The broad groups (4–7) are at least _BROAD_MIN_SIGMA wide, so their Gaussian kernels vanish
    # (< 1e-10) above _N_BROAD_FREQ: only those frequencies are multiplied. Convolution is linear:
    # sum the groups in Fourier space and transform back once.
    sig[:, 4:] = np.maximum(sig[:, 4:], _BROAD_MIN_SIGMA)
    ft = np.fft.rfft(layers, axis=2)
    spec = (ft[:, :4] * np.exp(-2.0 * np.pi**2 * sig[:, :4, None] ** 2 * _FREQ2)).sum(axis=1)
    m = _N_BROAD_FREQ
    spec[:, :m] += (ft[:, 4:, :m] * np.exp(-2.0 * np.pi**2 * sig[:, 4:, None] ** 2 * _FREQ2[:m])).sum(axis=1)
    conv = np.fft.irfft(spec, n=_NFFT, axis=1)[:, _PAD : _PAD + N_PIX]

    rest = _WAVE[None, :] / (1.0 + z)[:, None]
    agn = (1.0 - h)[:, None] * (rest / 5100.0) ** _col(params, "alpha")[:, None] * red_agn[:, _PAD : _PAD + N_PIX]
    scale = _col(params, "flux_scale") / (1.0 + z)
    return (conv + agn) * scale[:, None] * (_WAVE[None, :] / 6000.0) ** _col(params, "tilt")[:, None]
