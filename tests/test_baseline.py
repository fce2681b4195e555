"""Tests of the physics baseline: recovery of known line widths and ratios, the rules, the
estimator interface, and a quality gate on the real SDSS spectra."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from agnlens.lines import C_KMS, line
from agnlens.models.baseline import CLASSES, FWHM_PER_SIGMA, PhysicsBaseline
from agnlens.preprocess import get_grid, preprocess
from agnlens.spectra import Spectrum, SpectrumSet

from realdata import (  # the quality gate wants all 95 real spectra
    FULL_SDSS as SDSS,
    SDSS as REPO_SDSS,  # the in-repo real spectra (tests/data)
    needs_full_set,
)

INSTRUMENT_SIGMA = 69.0


def _gauss(wl, centre, fwhm_intrinsic, flux):
    """A Gaussian line of integrated ``flux`` as the spectrograph sees it (instrumental σ added)."""
    sigma_kms = np.hypot(fwhm_intrinsic / FWHM_PER_SIGMA, INSTRUMENT_SIGMA)
    s = centre * sigma_kms / C_KMS
    return flux * np.exp(-0.5 * ((wl - centre) / s) ** 2) / (np.sqrt(2 * np.pi) * s)


def make_set(
    n: int,
    grid: str,
    *,
    fwhm_hb: float = 3000.0,
    fwhm_ha: float | None = None,
    hb_broad: float = 40.0,
    ha_broad: float | None = None,
    hb_narrow: float = 2.0,
    oiii: float = 10.0,
    fwhm_narrow: float = 350.0,
    snr: float = 25.0,
    seed: int = 0,
) -> SpectrumSet:
    """Rest-frame, normalised test spectra with Gaussian lines of known width and flux."""
    rng = np.random.default_rng(seed)
    wl = get_grid(grid).wavelength
    fwhm_ha = fwhm_hb if fwhm_ha is None else fwhm_ha
    ha_broad = 3.0 * hb_broad if ha_broad is None else ha_broad
    f = 1.0 - 2e-4 * (wl - 5100.0)
    f += _gauss(wl, line("Hbeta").wavelength, fwhm_narrow, hb_narrow)
    f += _gauss(wl, line("OIII_5008").wavelength, fwhm_narrow, oiii)
    f += _gauss(wl, line("OIII_4960").wavelength, fwhm_narrow, oiii / 2.98)
    f += _gauss(wl, line("Halpha").wavelength, fwhm_narrow, 3.0 * hb_narrow)
    f += _gauss(wl, line("NII_6585").wavelength, fwhm_narrow, 2.0 * hb_narrow)
    f += _gauss(wl, line("NII_6550").wavelength, fwhm_narrow, 2.0 * hb_narrow / 3.05)
    if hb_broad:
        f += _gauss(wl, line("Hbeta").wavelength, fwhm_hb, hb_broad)
    if ha_broad:
        f += _gauss(wl, line("Halpha").wavelength, fwhm_ha, ha_broad)
    sigma = 1.0 / snr
    flux = f[None, :] + rng.normal(0.0, sigma, (n, wl.size))
    ivar = np.full((n, wl.size), 1.0 / sigma**2)
    meta = pd.DataFrame({"spec_id": [f"sim-{i}" for i in range(n)]})
    return SpectrumSet(
        wl, flux.astype(np.float32), ivar.astype(np.float32), np.zeros((n, wl.size), bool), meta, grid=grid
    )


@pytest.mark.parametrize("grid", ["paper", "balmer"])
@pytest.mark.parametrize("fwhm", [1500.0, 3000.0, 6000.0])
def test_broad_fwhm_recovered_within_10_percent(grid, fwhm):
    spectra = make_set(8, grid, fwhm_hb=fwhm, seed=int(fwhm))
    table = PhysicsBaseline().fit(spectra).measure(spectra)
    rel = np.abs(table["hb_fwhm_broad"] / fwhm - 1.0)
    assert rel.max() < 0.10, table["hb_fwhm_broad"].tolist()
    assert (table["predicted_label"] == "type1").all()
    if grid == "balmer":
        assert np.abs(table["ha_fwhm_broad"] / fwhm - 1.0).max() < 0.10
        # [N II]/Hα narrow = 2/3 in the input (narrow Hα under a 20× brighter broad line is noisy)
        assert abs(np.median(table["nii_ha"]) / (2.0 / 3.0) - 1.0) < 0.10
    else:
        assert not table["halpha_covered"].any()
        assert table["ha_fwhm_broad"].isna().all()


@pytest.mark.parametrize("grid", ["paper", "balmer"])
def test_oiii_hbeta_ratio_and_narrow_width_recovered(grid):
    # R = 10 / (2 + 40) = 0.238: type 1.0
    spectra = make_set(6, grid, seed=3)
    table = PhysicsBaseline().fit(spectra).measure(spectra)
    assert np.abs(table["r_oiii_hb"] / (10.0 / 42.0) - 1.0).max() < 0.10
    assert np.abs(table["oiii_fwhm"] / 350.0 - 1.0).max() < 0.10
    assert np.abs(table["hb_broad_fraction"] - 40.0 / 42.0).max() < 0.03
    assert (table["subtype"] == "1.0").all()


@pytest.mark.parametrize("grid", ["paper", "balmer"])
def test_narrow_only_spectra_are_type2(grid):
    spectra = make_set(10, grid, hb_broad=0.0, ha_broad=0.0, hb_narrow=4.0, oiii=24.0, seed=5)
    table = PhysicsBaseline().fit(spectra).measure(spectra)
    assert (table["predicted_label"] == "type2").all(), table[["subtype", "hb_delta_bic", "ha_delta_bic"]]
    assert (table["subtype"] == "2").all()
    assert (table["hb_delta_bic"] < 10).all()
    # narrow-only: R = [O III] / narrow Hβ = 6 (narrow Hβ flux error ≈ 3 % per spectrum here)
    assert abs(np.median(table["r_oiii_hb"]) / 6.0 - 1.0) < 0.05
    assert np.abs(table["r_oiii_hb"] / 6.0 - 1.0).max() < 0.15


def test_broad_only_in_halpha_is_type_1_9_on_balmer_grid_and_type2_without_halpha():
    balmer = make_set(6, "balmer", hb_broad=0.0, ha_broad=30.0, fwhm_ha=3000.0, seed=7)
    table = PhysicsBaseline().fit(balmer).measure(balmer)
    assert (table["subtype"] == "1.9").all(), table[["subtype", "hb_delta_bic", "ha_delta_bic"]]
    assert (table["predicted_label"] == "intermediate").all()
    assert np.abs(table["ha_fwhm_broad"] / 3000.0 - 1.0).max() < 0.10

    paper = make_set(6, "paper", hb_broad=0.0, ha_broad=30.0, seed=7)
    table = PhysicsBaseline().fit(paper).measure(paper)
    assert (table["subtype"] == "2").all()


def test_subtypes_follow_winkler_and_the_class_mapping_of_agnlens_classes():
    from agnlens.classes import class_of_subtype, winkler_subtype

    # R = 30 / (3 + 12) = 2: type 1.5
    s15 = make_set(6, "balmer", hb_broad=12.0, hb_narrow=3.0, oiii=30.0, seed=11)
    t15 = PhysicsBaseline().fit(s15).measure(s15)
    assert (t15["subtype"] == "1.5").all(), t15[["subtype", "r_oiii_hb", "hb_broad_fraction"]]
    assert (t15["predicted_label"] == "type1").all()  # the quasar mapping (default)
    seyfert = PhysicsBaseline(quasar=False).fit(s15).measure(s15)
    assert (seyfert["predicted_label"] == "intermediate").all()
    # R = 30 / (1 + 4) = 6: type 1.8, intermediate under either mapping
    s18 = make_set(6, "balmer", hb_broad=4.0, hb_narrow=1.0, oiii=30.0, snr=50.0, seed=13)
    t18 = PhysicsBaseline().fit(s18).measure(s18)
    assert (t18["subtype"] == "1.8").all(), t18[["subtype", "r_oiii_hb", "hb_broad_fraction"]]
    assert (t18["predicted_label"] == "intermediate").all()
    # one definition: the table's subtype and label are those of agnlens.classes for its own numbers
    for table, quasar in ((t15, True), (seyfert, False), (t18, True)):
        for row in table.itertuples():
            sub = winkler_subtype(row.r_oiii_hb, row.hb_broad, row.ha_broad)
            assert row.subtype == sub and row.predicted_label == class_of_subtype(sub, quasar=quasar)


def test_a_width_pinned_at_its_bound_is_flagged():
    # a 26,000 km/s "broad line" is wider than the Hβ window (±13,500 km/s) can hold: the fit takes
    # part of it for continuum, and where its width ends at the 20,020 km/s bound that is flagged
    spectra = make_set(4, "paper", fwhm_hb=26000.0, hb_broad=120.0, snr=40.0, seed=41)
    table = PhysicsBaseline().fit(spectra).measure(spectra)
    assert (table["hb_delta_bic"] > 100).all()
    assert table["hb_broad_at_bound"].any(), table["hb_fwhm_broad"]
    assert (table["flags"].str.contains("hb-broad-width-at-bound") == table["hb_broad_at_bound"]).all()
    ok = make_set(4, "paper", fwhm_hb=4000.0, seed=42)
    assert (PhysicsBaseline().fit(ok).measure(ok)["flags"] == "").all()


def test_very_broad_lines_are_measured_not_pinned():
    """Issue 23: broad Balmer lines of FWHM 13,000 km/s (the simulator draws up to 16,000, real
    quasars reach ~15,000) are measured in both windows — Hα's reaches 6200 Å, so that the line's
    blue wing has continuum beside it — within 20 %, none at a bound, all counted: type 1."""
    spectra = make_set(8, "balmer", fwhm_hb=13000.0, snr=25.0, seed=13000)
    table = PhysicsBaseline().fit(spectra).measure(spectra)
    for prefix in ("hb", "ha"):
        assert np.abs(table[f"{prefix}_fwhm_broad"] / 13000.0 - 1.0).max() < 0.2, table[f"{prefix}_fwhm_broad"]
        assert not table[f"{prefix}_broad_at_bound"].any()
        assert table[f"{prefix}_broad"].all()
    assert (table["predicted_label"] == "type1").all()


def test_feii_is_fitted_and_keeps_the_broad_width():
    """Fe II 4925/5020 at 3/4 of the broad line's width in the red wing of Hβ: the fit recovers both."""
    from agnlens.models.linemodel import FEII_WIDTH_RATIO, HBETA

    spectra = make_set(6, "paper", fwhm_hb=4000.0, hb_broad=40.0, snr=40.0, seed=43)
    wl = spectra.wavelength
    feii = sum(_gauss(wl, centre, 4000.0 * FEII_WIDTH_RATIO, 8.0 * strength) for centre, strength in HBETA.feii)
    spectra.flux[:] = spectra.flux + feii[None, :].astype(np.float32)
    table = PhysicsBaseline().fit(spectra).measure(spectra)
    assert np.abs(table["hb_fwhm_broad"] / 4000.0 - 1.0).max() < 0.10, table["hb_fwhm_broad"]
    assert np.abs(table["hb_feii_flux"] / 8.0 - 1.0).max() < 0.25, table["hb_feii_flux"]
    assert np.abs(table["hb_flux_broad"] / 40.0 - 1.0).max() < 0.10


def test_measure_table_beside_predictions():
    from agnlens.models.baseline import MEASURE_COLUMNS, measure

    spectra = SpectrumSet.concat([make_set(3, "balmer", seed=51), make_set(3, "balmer", hb_broad=0.0,
                                                                              ha_broad=0.0, seed=52)])
    predicted = ["type1", "type2", "type2", "type2", "type2", "type2"]
    table = measure(spectra, predicted)
    assert tuple(table.columns) == MEASURE_COLUMNS
    assert list(table["baseline_label"]) == ["type1"] * 3 + ["type2"] * 3
    assert list(table["agrees_with_baseline"]) == [True, False, False, True, True, True]
    # widths only where a broad line counts; the ratios are those put in (narrow Hα / Hβ = 3)
    assert table["hb_fwhm_broad"].iloc[:3].notna().all() and table["hb_fwhm_broad"].iloc[3:].isna().all()
    assert np.abs(table["balmer_decrement_narrow"].iloc[3:] / 3.0 - 1.0).max() < 0.1
    assert np.abs(table["oiii_hb_narrow"].iloc[3:] / 5.0 - 1.0).max() < 0.1
    # [N II]/Hα = 2/3, [O III]/Hβ = 5: above Kewley 2001, [O III]/Hβ > 3 → Seyfert
    assert (table["bpt_class"].iloc[3:] == "seyfert").all()
    assert (measure(make_set(2, "paper", seed=53))["bpt_class"] == "").all()  # no Hα on the paper grid
    with pytest.raises(ValueError, match="predicted has shape"):
        measure(spectra, ["type1"])


def test_bpt_curves_and_classes():
    from agnlens.models.bpt import bpt_class, kauffmann03, kewley01

    # the published curves at log [N II]/Hα = -0.5 (values computed by hand from the formulas)
    assert kewley01(-0.5) == pytest.approx(0.61 / -0.97 + 1.19)
    assert kauffmann03(-0.5) == pytest.approx(0.61 / -0.55 + 1.30)
    x = np.array([-0.8, -0.3, -0.3, 0.2, 0.2, np.nan])
    y = np.array([-0.5, 0.0, 0.25, 1.0, 0.2, 0.3])
    # brute force: each point against the curves, one at a time
    expected = []
    for xi, yi in zip(x, y):
        if not np.isfinite(xi):
            expected.append("")
        elif xi < 0.05 and yi < 0.61 / (xi - 0.05) + 1.30:
            expected.append("star-forming")
        elif xi < 0.47 and yi < 0.61 / (xi - 0.47) + 1.19:
            expected.append("composite")
        else:
            expected.append("seyfert" if yi > np.log10(3) else "liner")
    got = bpt_class(10**x, 10**y)
    assert list(got) == expected
    assert set(expected) == {"star-forming", "composite", "seyfert", "liner", ""}


def test_reported_flux_error_matches_scatter_over_noise_draws():
    """The broad flux error from the Jacobian agrees with the spread over independent noise."""
    spectra = make_set(40, "paper", fwhm_hb=4000.0, hb_broad=20.0, snr=15.0, seed=17)
    table = PhysicsBaseline().fit(spectra).measure(spectra)
    spread = table["hb_flux_broad"].std(ddof=1)
    reported = table["hb_flux_broad_err"].median()
    assert 0.6 < reported / spread < 1.6, (reported, spread)
    assert abs(table["hb_flux_broad"].mean() - 20.0) < 3 * spread / np.sqrt(len(table)) + 0.02 * 20.0


def test_probabilities_are_consistent_with_predict():
    spectra = SpectrumSet.concat(
        [
            make_set(3, "balmer", seed=1),
            make_set(3, "balmer", hb_broad=0.0, ha_broad=0.0, seed=2),
            make_set(3, "balmer", hb_broad=0.0, ha_broad=30.0, seed=3),
        ]
    )
    base = PhysicsBaseline().fit(spectra)
    proba = base.predict_proba(spectra)
    assert proba.shape == (9, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    pred = base.predict(spectra)
    np.testing.assert_array_equal(base.classes_[np.argmax(proba, axis=1)], pred)
    np.testing.assert_array_equal(pred, ["type1"] * 3 + ["type2"] * 3 + ["intermediate"] * 3)
    assert list(base.classes_) == list(CLASSES)
    assert (proba.max(axis=1) >= 0.5).all()


def test_bare_arrays_need_the_grid_and_agree_with_the_spectrum_set():
    spectra = make_set(4, "paper", seed=21)
    with pytest.raises(ValueError, match="no wavelength grid"):
        PhysicsBaseline().fit(spectra.flux)
    base = PhysicsBaseline(wavelength=spectra.wavelength).fit(spectra.flux, ["type1"] * 4)
    np.testing.assert_array_equal(base.predict(spectra.flux), ["type1"] * 4)
    with_ivar = base.measure(spectra)["hb_fwhm_broad"]
    without = base.measure(spectra.flux)["hb_fwhm_broad"]
    np.testing.assert_allclose(without, with_ivar, rtol=0.02)


def test_user_errors_have_clear_messages():
    spectra = make_set(2, "paper", seed=0)
    with pytest.raises(ValueError, match="not classes the baseline gives"):
        PhysicsBaseline().fit(spectra, ["type1", "non-agn"])
    with pytest.raises(ValueError, match="2 spectra but y has 3"):
        PhysicsBaseline().fit(spectra, ["type1"] * 3)
    base = PhysicsBaseline().fit(spectra)
    balmer = make_set(2, "balmer", seed=0)
    with pytest.raises(ValueError, match="refit on this grid|pixels"):
        base.predict(balmer)
    blue = SpectrumSet(
        np.linspace(3700, 4600, 500), np.ones((1, 500), np.float32), np.ones((1, 500), np.float32),
        np.zeros((1, 500), bool), pd.DataFrame({"spec_id": ["x"]}),
    )
    with pytest.raises(ValueError, match="does not cover the Hβ"):
        PhysicsBaseline().fit(blue)
    with pytest.raises(TypeError, match="SpectrumSet or an array"):
        PhysicsBaseline().fit("spectra.zarr")


def test_estimator_interface():
    base = PhysicsBaseline(min_broad_fwhm=1500.0, n_jobs=1)
    params = base.get_params()
    assert params["min_broad_fwhm"] == 1500.0 and params["wavelength"] is None
    copy = clone(base)
    assert copy.get_params() == params
    spectra = make_set(2, "paper", seed=0)
    assert base.fit(spectra) is base
    assert base.n_features_in_ == spectra.n_pixels
    with pytest.raises(TypeError):
        PhysicsBaseline(1500.0)  # keyword-only


def test_worker_processes_give_the_same_table():
    spectra = make_set(100, "paper", fwhm_hb=2500.0, snr=20.0, seed=23)
    one = PhysicsBaseline().fit(spectra).measure(spectra)
    two = PhysicsBaseline(n_jobs=2).fit(spectra).measure(spectra)
    pd.testing.assert_frame_equal(one, two)


# ----------------------------------------------------------------------------- real spectra
def _read_real(labels: pd.DataFrame) -> list[Spectrum]:
    from astropy.io import fits

    spectra = []
    for row in labels.itertuples():
        with fits.open(SDSS / row.file) as hdul:
            coadd = hdul["COADD"].data
            wl = 10.0 ** np.asarray(coadd["loglam"], dtype=float)
            flux = np.asarray(coadd["flux"], dtype=float)
            ivar = np.asarray(coadd["ivar"], dtype=float)
            bad = (np.asarray(coadd["and_mask"]) != 0) | (ivar <= 0)
        meta = {"spec_id": row.spec_id, "z": row.z, "label": row.label, "source": row.file}
        spectra.append(Spectrum(wl, flux, ivar, bad, meta))
    return spectra


@pytest.fixture(scope="module")
def real_balmer():
    labels = pd.read_csv(SDSS / "labels.csv", dtype={"spec_id": str})
    spectra, _ = preprocess(_read_real(labels), "balmer")
    return spectra, labels.set_index("spec_id")


@needs_full_set
def test_real_type1_spectra_show_broad_lines_with_the_independent_width(real_balmer):
    spectra, labels = real_balmer
    table = PhysicsBaseline().fit(spectra).measure(spectra)
    truth = spectra.labels
    type1 = table[truth == "type1"]
    assert len(type1) >= 60
    # Broad Hβ or Hα found in (nearly) every real type 1; most keep the type 1 label (the rest
    # are 1.5 by their [O III]/Hβ, which is the rule, not a failure).
    broad = type1["hb_broad"] | type1["ha_broad"]
    assert broad.mean() >= 0.95
    assert (type1["predicted_label"] == "type1").mean() >= 0.8
    # widths pinned at the 20,020 km/s bound are flagged, and few once Fe II is fitted
    pinned = type1["hb_broad"] & type1["hb_broad_at_bound"]
    assert (type1.loc[pinned, "flags"].str.contains("hb-broad-width-at-bound")).all()
    assert pinned.sum() <= 3
    # Broad Hα FWHM agrees with the independent quick fit in labels.csv (median within 15 %).
    ref = labels.loc[type1["spec_id"], "fwhm_broad_halpha_kms"].to_numpy(dtype=float)
    ok = np.isfinite(ref) & (ref > 1500) & type1["ha_broad"].to_numpy()
    ratio = type1["ha_fwhm_broad"].to_numpy()[ok] / ref[ok]
    assert ok.sum() >= 40
    assert abs(np.median(ratio) - 1.0) < 0.15
    # No real type 2 or intermediate is called type 1.
    others = table[np.isin(truth, ["type2", "intermediate"])]
    assert len(others) >= 4
    assert (others["predicted_label"] != "type1").all(), others[["spec_id", "subtype"]]


def test_cli_baseline_writes_the_measurement_table(tmp_path, capsys):
    from agnlens.cli import main
    from agnlens.io.store import write_store

    spectra = SpectrumSet.concat(
        [make_set(3, "paper", seed=31), make_set(3, "paper", hb_broad=0.0, ha_broad=0.0, seed=32)]
    )
    spectra.meta["spec_id"] = [f"s{i}" for i in range(len(spectra))]
    spectra.meta["label"] = ["type1"] * 3 + ["type2"] * 3
    store = write_store(spectra, tmp_path / "set.zarr")
    out = tmp_path / "baseline.csv"
    assert main(["baseline", str(store), "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert list(table["spec_id"]) == [f"s{i}" for i in range(6)]
    assert list(table["predicted_label"]) == list(table["label"])
    expected = PhysicsBaseline().fit(spectra).measure(spectra)
    np.testing.assert_allclose(table["hb_fwhm_broad"], expected["hb_fwhm_broad"], rtol=1e-6)
    assert "6 spectra classified" in capsys.readouterr().out


def test_on_the_project_simulator(monkeypatch):
    """Spectra of agnlens.simulate (host light, Fe II, outflow wings): broad FWHM within 10 % for
    single-Gaussian broad lines at good S/N, and type 2 stays type 2."""
    import agnlens.simulate.parameters as parameters
    from agnlens.simulate import simulate_set

    # quasars' broad lines of one Gaussian (no population A/B profile): their FWHM is the one drawn
    monkeypatch.setattr(parameters, "broad_profile", lambda rng, fwhm: (0.0, 1.0, 0.0))
    spectra = simulate_set(200, seed=5, grid="balmer", counts={"type1": 100, "type2": 100})
    table = PhysicsBaseline().fit(spectra).measure(spectra)
    meta = spectra.meta
    type2 = meta["label"].to_numpy() == "type2"
    # 0.92, not 0.98, since the simulator's type 2 have real stellar populations and outflow wings
    # on every narrow line, Hα too: the rule finds a ~1,300–3,600 km/s "broad Hα" in a few (issue 11;
    # 0.94 here; 0.96 while the wing was on [O III] alone)
    assert (table.loc[type2, "predicted_label"] == "type2").mean() >= 0.92
    single = (meta["label"] == "type1") & (meta["broad_wing_fraction"] == 0) & (meta["snr"] > 15)
    single &= (meta["fwhm_broad"] > 1500).to_numpy()
    # the Boroson & Green Fe II template's 4924/5018 Å lines sit on Hβ's wings: weaker Fe II only
    single &= (meta["feii_ratio"] < 0.5).to_numpy()
    # and AGN-dominated ones: the baseline fits no stellar continuum, so the host's Hβ absorption
    # under a host-dominated (≥ 60 %) Seyfert 1's broad Hβ widens its fit by 15–100 %
    single &= (meta["host_fraction"] < 0.6).to_numpy()
    assert single.sum() >= 12
    # broad Hα is drawn narrower than broad Hβ, as in real type 1 (meta fwhm_broad_halpha)
    for col, truth in (("hb_fwhm_broad", "fwhm_broad"), ("ha_fwhm_broad", "fwhm_broad_halpha")):
        ratio = table.loc[single, col] / meta.loc[single, truth]
        # Hβ: the fit's 3-line Fe II is simpler than the simulator's 45-line template (and He II
        # 4687 is not fitted), which leaves broad Hβ about 5 % narrow; Hα has no Fe II
        tol = 0.15 if col == "hb_fwhm_broad" else 0.10
        assert (np.abs(ratio - 1.0) < tol).mean() >= 0.85, (col, ratio.describe())
        assert abs(ratio.median() - 1.0) < (0.07 if col == "hb_fwhm_broad" else 0.05)
    assert (table.loc[meta["label"] == "type1", "predicted_label"] != "type2").mean() >= 0.95


def test_cli_baseline_reads_fits_files_and_reports_a_bad_one(tmp_path, capsys):
    from agnlens.cli import main

    bad = tmp_path / "spec-0000-00000-0000.fits"
    bad.write_bytes(b"not a FITS file")
    files = [str(REPO_SDSS / "spectra" / f"spec-{i}.fits") for i in ("0332-52367-0639", "0392-51793-0517")]
    out = tmp_path / "b.csv"
    assert main(["baseline", *files, str(bad), "--out", str(out), "--labels", str(REPO_SDSS / "labels.csv")]) == 1
    err = capsys.readouterr().err
    assert "spec-0000-00000-0000.fits" in err and err.count("rejected") == 1
    table = pd.read_csv(out, dtype={"spec_id": str})
    assert list(table["spec_id"]) == ["0332-52367-0639", "0392-51793-0517"]
    assert list(table["label"]) == ["type1", "type2"]
    assert list(table["predicted_label"]) == ["type1", "type2"]
    assert table["halpha_covered"].all() and {"bpt_class", "flags"} <= set(table.columns)


def test_measure_inputs_puts_the_measurements_beside_predictions():
    """What ``classify --measure`` does: FITS files re-read onto the balmer grid, matched by spec_id."""
    from agnlens.study_real import measure_inputs

    files = [str(REPO_SDSS / "spectra" / f"spec-{i}.fits") for i in ("0332-52367-0639", "0392-51793-0517")]
    predictions = pd.DataFrame({"spec_id": ["0392-51793-0517", "0332-52367-0639"],
                                "predicted_label": ["type1", "type1"]})
    table = measure_inputs(files, predictions)
    assert list(table["spec_id"]) == list(predictions["spec_id"])  # the predictions' order is kept
    assert list(table["baseline_label"]) == ["type2", "type1"]
    assert list(table["agrees_with_baseline"]) == [False, True]
    assert np.isfinite(table["ha_fwhm_broad"].iloc[1]) and np.isnan(table["ha_fwhm_broad"].iloc[0])


def test_cli_baseline_help_prints_the_rules(capsys):
    from agnlens.cli import main
    from agnlens.models.baseline import rules

    try:
        code = main(["baseline", "--help"])
    except SystemExit as exc:  # argparse's --help
        code = exc.code
    assert code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "rules:" in out
    for rule in rules():
        assert " ".join(rule.split()) in out
