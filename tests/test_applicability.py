"""Applicability of predictions: the training-domain PCA against scikit-learn, the kernel values
against a brute-force loop, collapse and out-of-distribution flags, older models without a domain,
and the flag rate on simulated test spectra."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.metrics.pairwise import rbf_kernel

from agnlens.models.applicability import (
    KERNEL_COLLAPSE,
    applicability,
    intercept_share,
    max_kernel,
    reason,
)
from agnlens.models.domain import TrainingDomain
from agnlens.models.svm import SpectrumSVC
from agnlens.models.tuning import split, train
from agnlens.simulate import simulate_set
from agnlens.stages import classify

from realdata import needs_full_set


@pytest.fixture(scope="module")
def trained():
    """A model trained the study's way (split, tuning, domain) on a small simulated set."""
    spectra = simulate_set(300, seed=4, grid="paper")
    result = train(spectra, kernels=("rbf",), n_boot=0, seed=4)
    return spectra, result


def test_domain_pca_matches_sklearn_and_mahalanobis_a_loop():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 40)) @ rng.normal(size=(40, 40))
    domain = TrainingDomain(n_components=5).fit(X)
    ref = PCA(n_components=5).fit(X)
    np.testing.assert_allclose(np.abs(domain.components_ @ ref.components_.T), np.eye(5), atol=1e-8)
    np.testing.assert_allclose(domain.variance_, ref.explained_variance_, rtol=1e-10)
    Y = rng.normal(size=(7, 40)) * 3
    residual, mahal = domain.score(Y)
    T = ref.transform(Y)
    for i in range(7):
        assert mahal[i] == pytest.approx(np.sqrt(sum(T[i, k] ** 2 / ref.explained_variance_[k] for k in range(5))))
        back = ref.inverse_transform(T[i : i + 1])[0]
        assert residual[i] == pytest.approx(np.sqrt(np.mean((Y[i] - back) ** 2)))
    r_thr, m_thr = domain.thresholds(0.5)
    assert r_thr == pytest.approx(np.median(domain.score(X)[0]))


def test_max_kernel_and_intercept_share_against_a_loop(trained):
    spectra, result = trained
    model = result.model
    X = np.asarray(spectra.flux[:5], dtype=np.float64)
    Z = model.scaler_.transform(X) if model.scaler_ is not None else X
    ref = rbf_kernel(Z, model.support_vectors_, gamma=model.gamma_).max(axis=1)
    np.testing.assert_allclose(max_kernel(model, X), ref, rtol=1e-9)
    # one distance computation: the largest value of the very kernel the model predicts with, bit for bit
    from agnlens.models.kernels import gram, kernel_from_gram, sqnorms

    SV = model.support_vectors_
    K = kernel_from_gram(gram(Z, SV), "rbf", model.gamma_, 3, 0.0, sqnorms(Z), sqnorms(SV))
    np.testing.assert_array_equal(max_kernel(model, X), K.max(axis=1))
    f = model.pairwise_decision_function(X)
    b = np.abs(model.intercept_)
    loop = [min(b[q] / (b[q] + abs(f[i, q] - model.intercept_[q])) for q in range(b.size)) for i in range(5)]
    np.testing.assert_allclose(intercept_share(model, X), loop, rtol=1e-12)


def test_a_spectrum_far_from_everything_is_flagged_but_still_predicted(trained):
    spectra, result = trained
    model = result.model
    odd = spectra[np.arange(3)]
    odd.flux[0] = 1000.0  # a flat spectrum of constant flux 1000
    odd.flux[1] = odd.flux[1] + 20.0 * np.sin(np.arange(odd.n_pixels) / 7.0)
    table = classify(model, odd, check_redshift=False)
    assert len(table) == 3 and np.isfinite(table[[f"p_{c}" for c in model.classes_]].to_numpy()).all()
    assert not table["applicable"][0] and "kernel-collapse" in table["flags"][0]
    assert table["max_kernel"][0] < KERNEL_COLLAPSE
    assert "out-of-distribution" in table["flags"][1]
    assert table["applicable"][2] and table["flags"][2] == ""
    assert reason(table["flags"][0]).startswith("kernel collapse")


def test_models_without_a_domain_fall_back(trained):
    spectra, result = trained
    model = result.model
    domain = model.training_domain_
    try:
        del model.training_domain_
        judged = applicability(model, spectra[np.arange(4)]).table
        assert set(judged["ood_check"]) == {"support vectors"} and judged["pca_residual"].isna().all()
    finally:
        model.training_domain_ = domain
    linear = SpectrumSVC(kernel="linear").fit(np.asarray(spectra.flux, float), spectra.labels)
    judged = applicability(linear, spectra[np.arange(4)]).table
    assert set(judged["ood_check"]) == {"unavailable"} and judged["max_kernel"].isna().all()


def test_the_domain_is_saved_with_the_model(trained, tmp_path):
    from agnlens.models.persistence import load_model, save_model

    _, result = trained
    save_model(result.model, tmp_path / "m.skops", metadata=result.metadata)
    loaded, _ = load_model(tmp_path / "m.skops")
    np.testing.assert_array_equal(loaded.training_domain_.components_, result.model.training_domain_.components_)


def test_at_most_one_percent_of_simulated_test_spectra_are_flagged():
    """Simulated test spectra (never seen by the PCA nor by the thresholds) are like the training
    ones: the applicability check must leave ≥ 99 % of them applicable. The model is fitted as
    :func:`train` fits its best cell (train split; domain thresholds on the validation split)."""
    spectra = simulate_set(1500, seed=7, grid="paper")
    parts = split(spectra.labels, seed=7)
    X = np.asarray(spectra.flux, dtype=np.float64)
    model = SpectrumSVC(kernel="rbf", C=100.0, calibration_cv=None)
    model.fit(X[parts["train"]], spectra.labels[parts["train"]])
    model.training_domain_ = TrainingDomain().fit(X[parts["train"]], X[parts["validation"]])
    judged = applicability(model, spectra[parts["test"]]).table
    assert len(judged) >= 290
    assert (~judged["applicable"]).mean() <= 0.01, judged["flags"].value_counts()
    # and the per-spectrum redshift check on some of them: lines at the simulated redshift
    table = classify(model, spectra[parts["test"][:6]])
    assert not table["flags"].str.contains("redshift-offset").any()


@pytest.mark.slow
def test_flags_on_held_out_simulated_spectra_with_the_default_model():
    """Every flag together, as ``classify --measure`` gives them with the default balmer model, on
    600 held-out SIMULATED spectra of its own training distribution (a seed it never saw).

    Contract (bounds; over seeds 12345, 777, 2024, 31337, 4242 of ``scripts/check_edges.py sim``
    the accuracy is 94.5–95.8 %, 6.7–8.7 % of the spectra are flagged, 3.2–5.0 % of all spectra are
    correct calls with a flag, 60–78 % of the wrong calls are flagged, and 50–85 % of the type 2
    calls flagged ``physics-disagrees`` are wrong): the accuracy is at least 93 %; at most 9 % of the
    spectra carry a flag and at most 6 % are correct calls with a flag; at least 40 % of the type 2
    calls flagged ``physics-disagrees`` (a broad Hα the baseline counts) are wrong — the others are
    type 2 whose narrow lines carry an outflow wing of 2,000–3,500 km/s, which the baseline takes for
    a weak broad Hα; at least half of the wrong calls carry a flag. The issue's aim of ≤ 2 % flagged
    in all is not met (docs/applicability.md, *Measured on held-out simulated spectra*): the model
    is wrong on 4–6 % of these spectra, and those are the ones to flag."""
    from agnlens.models.default import resolve_models
    from agnlens.stages.loading import model_for_grid

    spectra = simulate_set(600, seed=4242, grid="balmer", redshift="full", convention="spectroscopic")
    model, _ = model_for_grid(resolve_models(None), "balmer")
    table = classify(model, spectra, measure=True)
    flagged = table["flags"].fillna("").astype(str) != ""
    right = table["predicted_label"].to_numpy() == np.asarray(spectra.labels).astype(str)
    wrong_type2 = (table["predicted_label"] == "type2").to_numpy() & ~right
    pd_type2 = table["flags"].astype(str).str.contains("physics-disagrees").to_numpy() & (
        table["predicted_label"] == "type2").to_numpy()
    assert right.mean() >= 0.93
    assert flagged.mean() <= 0.09, table.loc[flagged, "flags"].value_counts()
    assert (flagged & right).mean() <= 0.06, table.loc[flagged & right, "flags"].value_counts()
    assert pd_type2.sum() >= 5 and (pd_type2 & wrong_type2).sum() >= 0.4 * pd_type2.sum()
    assert (flagged & ~right).sum() >= (~right).sum() / 2


# ------------------------------------------------------------------------------------ not an AGN
def test_narrow_flux_errors_match_the_scatter_of_repeated_fits():
    """The narrow-line flux errors of :func:`fit_lines` (behind the BPT S/N cut) against the scatter
    of the fitted fluxes over noise draws of one spectrum — the narrow-only model in Hβ, the broad
    model in Hα (a broad Hα under the narrow lines)."""
    from agnlens.lines import C_KMS, line
    from agnlens.models.linefit import FWHM_PER_SIGMA, fit_lines
    from agnlens.preprocess import balmer_grid

    wl = balmer_grid().wavelength

    def gauss(name, flux, fwhm=300.0):
        centre = line(name).wavelength
        s = centre * fwhm / FWHM_PER_SIGMA / C_KMS
        return flux * np.exp(-0.5 * ((wl - centre) / s) ** 2) / (np.sqrt(2 * np.pi) * s)

    truth = (1.0 + gauss("Hbeta", 2.0) + gauss("OIII_5008", 3.0) + gauss("OIII_4960", 3.0 / 2.98)
             + gauss("Halpha", 6.0) + gauss("NII_6585", 2.0) + gauss("NII_6550", 2.0 / 3.05)
             + gauss("Halpha", 40.0, fwhm=4000.0))
    sigma = 0.05
    n = 80
    ivar = np.full((n, wl.size), sigma**-2)
    flux = truth + np.random.default_rng(3).normal(0.0, sigma, (n, wl.size))
    fits = fit_lines(wl, flux, ivar, 69.0)
    hb, ha = fits["hbeta"], fits["halpha"]
    assert (hb["delta_bic"] < 0).all() and (ha["delta_bic"] > 10).all()  # both paths
    for res in (hb, ha):
        for j in (0, 1):
            ratio = res[f"flux_narrow_{j}"].std(ddof=1) / np.median(res[f"flux_narrow_err_{j}"])
            assert 0.8 < ratio < 1.25, (j, ratio)


def test_bpt_class_needs_every_line_measured():
    from agnlens.models.bpt import MIN_BPT_SNR, bpt_class

    # log [N II]/Hα = -1, log [O III]/Hβ = 0: well inside the star-forming branch
    got = bpt_class([0.1] * 4, [1.0] * 4, snr=[10.0, MIN_BPT_SNR, 0.999 * MIN_BPT_SNR, np.nan])
    assert list(got) == ["star-forming", "star-forming", "", ""]
    assert list(bpt_class([0.1], [1.0])) == ["star-forming"]
    with pytest.raises(ValueError, match="snr has shape"):
        bpt_class([0.1], [1.0], snr=[5.0, 5.0])


@pytest.fixture(scope="module")
def balmer_model():
    """A cheap linear model on the balmer grid (the not-agn check does not depend on the model)."""
    spectra = simulate_set(60, seed=5, grid="balmer")
    return SpectrumSVC(kernel="linear", calibration_cv=None).fit(np.asarray(spectra.flux, float), spectra.labels)


def test_star_forming_galaxies_are_flagged_not_agn_and_real_agn_are_not(balmer_model):
    """The in-repository real spectra (tests/data): the star-forming control 0266-51602-0107 (SDSS
    GALAXY, BPT star-forming, no broad line) and the passive control 0266-51602-0013 (Balmer
    absorption, no emission line) are flagged ``not-agn``, each with its reason; no spectrum
    labelled type 1, type 2, intermediate or ambiguous is. Without the physics check (or on a grid
    without Hα) the check says it is unavailable."""
    from agnlens.stages import read_inputs

    from realdata import LABELS, SPECTRA

    spectra, _ = read_inputs([SPECTRA], grid="balmer", labels=LABELS)
    table = classify(balmer_model, spectra, check_redshift=False)
    flagged = table["flags"].str.contains("not-agn", regex=False)
    assert set(table.loc[flagged, "spec_id"]) == {"0266-51602-0107", "0266-51602-0013"}
    assert not table.loc[flagged, "applicable"].any()
    why = dict(zip(table["spec_id"], table["agn_check"]))
    # on the Kauffmann curve within its errors ([O III]/Hβ 0.34-0.41 by the fit's start), and its
    # [O III] has EW ≈ 1 Å: either reason is right
    assert why["0266-51602-0107"] in {"star-forming, no broad line", "no broad line, weak [O III]"}
    assert why["0266-51602-0013"] == "no broad line, weak [O III]"
    assert table["predicted_label"].notna().all()  # flagged predictions are still written
    agn = np.isin(table["label"], ["type1", "type2", "intermediate", "ambiguous"])
    assert agn.sum() >= 15 and not flagged[agn].any()
    off = classify(balmer_model, spectra[np.arange(3)], check_redshift=False, check_physics=False)
    assert set(off["agn_check"]) == {"unavailable"} and not off["flags"].str.contains("not-agn").any()


@needs_full_set
def test_on_the_full_real_sample_only_non_agn_are_flagged_not_agn():
    """The 95 shared spectra: the starburst 1176-52791-0591 of issue 12 and the galaxies with no AGN
    line (passive 0266-51602-0013 and 0403-51871-0462, composite 0266-51602-0638 with [O III]
    undetected) are flagged, and the check costs nothing on the real AGN (every flagged spectrum is
    labelled non-agn; no spectrum labelled type 1, type 2 or intermediate is flagged)."""
    from agnlens.models.applicability import not_agn
    from agnlens.models.baseline import measure
    from agnlens.stages import read_inputs

    from realdata import FULL_LABELS, FULL_SPECTRA

    spectra, _ = read_inputs([FULL_SPECTRA], grid="balmer", labels=FULL_LABELS)
    flagged = not_agn(measure(spectra))
    ids = np.asarray(spectra.spec_id)
    assert {"1176-52791-0591", "0266-51602-0013", "0403-51871-0462", "0266-51602-0638"} <= set(ids[flagged])
    assert set(spectra.labels[flagged]) == {"non-agn"}
    agn = np.isin(spectra.labels, ["type1", "type2", "intermediate"])
    assert agn.sum() >= 80 and not (agn & flagged).any()


def test_simulated_agn_are_not_flagged_not_agn():
    """Simulated AGN on the balmer grid: ≤ 2 % flagged ``not-agn`` (the issue's gate for all flags
    together). Type 2 and intermediates only — the ones with weak or no broad lines, which the check
    could take for star-forming or passive galaxies (a type 1's broad lines rule it out); ~60 ms of
    line fits each. The few flagged are the simulator's own AGN drawn with [O III] EW ≲ 3 Å: they
    show no AGN line, so the flag is right about the spectrum."""
    from agnlens.models.applicability import not_agn
    from agnlens.models.baseline import measure

    spectra = simulate_set(400, seed=8, grid="balmer", counts={"type2": 300, "intermediate": 100})
    flagged = not_agn(measure(spectra))
    assert flagged.mean() <= 0.02
    assert (spectra.meta["oiii_ew"].to_numpy()[flagged] < 5).all()


# ------------------------------------------------------------------------------ redshift range
def test_training_range_is_recorded_saved_and_flags_z_out_of_range(trained, tmp_path):
    from agnlens.models.persistence import load_model, save_model

    spectra, result = trained
    train_meta = spectra.meta.iloc[result.split["train"]]
    rng = result.model.training_range_
    assert rng["z"] == [train_meta["z"].min(), train_meta["z"].max()]
    assert rng["snr"] == [train_meta["snr"].min(), train_meta["snr"].max()]
    save_model(result.model, tmp_path / "m.skops", metadata=result.metadata)
    loaded, meta = load_model(tmp_path / "m.skops")
    assert loaded.training_range_ == rng and meta["training_range"] == rng
    # the same spectra, their redshifts moved just outside and just inside the recorded range
    few = spectra[:4]
    z = np.array([rng["z"][0] - 1e-3, rng["z"][1] + 1e-3, rng["z"][0], rng["z"][1]])
    few.meta["z"] = z
    judged = applicability(loaded, few).table
    out = judged["flags"].str.contains("z-out-of-range").to_numpy()
    np.testing.assert_array_equal(out, [True, True, False, False])
    assert judged["z_check"].iloc[0].startswith("outside") and judged["z_check"].iloc[2] == "inside"


def test_models_saved_without_a_training_range_load_and_skip_the_check(trained, tmp_path):
    from agnlens.models.persistence import load_model, save_model

    spectra, result = trained
    old = result.model
    kept = old.__dict__.pop("training_range_")
    try:
        save_model(old, tmp_path / "old.skops", metadata={k: v for k, v in result.metadata.items()
                                                           if k != "training_range"})
    finally:
        old.training_range_ = kept
    loaded, meta = load_model(tmp_path / "old.skops")
    assert not hasattr(loaded, "training_range_") and "training_range" not in meta
    few = spectra[:3]
    few.meta["z"] = 5.0
    judged = applicability(loaded, few).table
    assert (judged["z_check"] == "unavailable").all()
    assert not judged["flags"].str.contains("z-out-of-range").any()


# ------------------------------------------------------------------------------ physics disagrees
def test_physics_disagrees_reads_counted_broad_lines_and_their_velocities():
    """Type 2 called beside a counted broad Hα at ΔBIC ≥ 20; type 1 called with no counted broad
    line within 3,000 km/s of the narrow lines (none counted at all, or only one far off). NaN
    widths/velocities: not counted; a table without the velocity columns takes counted lines as near;
    no Hβ fit, no verdict."""
    import pandas as pd

    from agnlens.models.applicability import physics_disagrees

    nan = np.nan
    rows = [  # (predicted, hb ΔBIC, ha ΔBIC, hb FWHM, ha FWHM, hb velocity, ha velocity, flagged)
        ("type1", 300.0, 900.0, 5000.0, 4500.0, 200.0, 150.0, False),  # a type 1 as it should be
        ("type1", 140.0, 2000.0, 10000.0, 11000.0, -8000.0, -7900.0, True),  # counted, but 8,000 km/s off
        ("type1", 140.0, 2000.0, 10000.0, 11000.0, -8000.0, 500.0, False),  # Hα near: enough
        ("type1", 105.0, 14.0, nan, nan, nan, nan, True),  # a pedestal the rules do not count
        ("type1", -5.0, -8.0, nan, nan, nan, nan, True),  # no broad line at all
        ("type1", nan, nan, nan, nan, nan, nan, False),  # Hβ not fitted: no verdict
        ("type1", 300.0, nan, 5000.0, nan, 100.0, nan, False),  # paper grid: Hβ alone
        ("type2", 5.0, 30.0, nan, 3000.0, nan, 100.0, True),  # counted broad Hα at ΔBIC 30
        ("type2", 5.0, 15.0, nan, 3000.0, nan, 100.0, False),  # counted, but ΔBIC < 20
        ("type2", 5.0, 300.0, nan, nan, nan, nan, False),  # not counted
        ("intermediate", -5.0, -8.0, nan, nan, nan, nan, False),
    ]
    cols = ["hb_delta_bic", "ha_delta_bic", "hb_fwhm_broad", "ha_fwhm_broad", "hb_velocity_broad",
            "ha_velocity_broad"]
    table = pd.DataFrame([r[1:7] for r in rows], columns=cols)
    expected = np.array([r[7] for r in rows])
    assert (physics_disagrees(table, [r[0] for r in rows]) == expected).all()
    older = table.drop(columns=["hb_velocity_broad", "ha_velocity_broad"])
    expected[1] = False  # without velocities a counted broad line is taken as near
    assert (physics_disagrees(older, [r[0] for r in rows]) == expected).all()


def test_no_real_type1_of_the_repository_set_would_be_flagged_physics_disagrees():
    """tests/data: called type 1, every real type 1 keeps a counted broad line near the narrow lines;
    the type 2 0565-52225-0263 (an [O III] wing in Hα, issue 23) would be flagged."""
    from agnlens.models.applicability import physics_disagrees
    from agnlens.models.baseline import measure
    from agnlens.stages import read_inputs

    from realdata import LABELS, SPECTRA

    spectra, _ = read_inputs([SPECTRA], grid="balmer", labels=LABELS)
    flagged = physics_disagrees(measure(spectra), np.full(len(spectra), "type1"))
    labels, ids = np.asarray(spectra.labels), np.asarray(spectra.spec_id)
    assert (labels == "type1").sum() >= 8 and not flagged[labels == "type1"].any()
    assert flagged[ids == "0565-52225-0263"].all()


@needs_full_set
def test_on_the_full_real_sample_physics_disagrees_flags_the_offset_ambiguous_not_the_type1():
    """Issue 23, the 95 shared spectra, whatever the SVM says: were every spectrum called type 1, no
    labelled type 1 would be flagged ``physics-disagrees``, and the three type-2-like ambiguous
    spectra at z > 0.37 (called type 1 by the default models) would be — their only broad lines
    the baseline counts lie 6,000–8,000 km/s blueward of the narrow lines, a kind of line no
    training spectrum has — as would 1305-52757-0281 (labelled intermediate, a 1.9)."""
    from agnlens.models.applicability import physics_disagrees
    from agnlens.models.baseline import measure
    from agnlens.stages import read_inputs

    from realdata import FULL_LABELS, FULL_SPECTRA

    spectra, _ = read_inputs([FULL_SPECTRA], grid="balmer", labels=FULL_LABELS)
    table = measure(spectra)
    flagged = physics_disagrees(table, np.full(len(spectra), "type1"))
    labels, ids = np.asarray(spectra.labels), np.asarray(spectra.spec_id)
    assert (labels == "type1").sum() >= 70 and not flagged[labels == "type1"].any()
    named = ["2347-53757-0513", "9616-58135-0154", "9626-57875-0651", "1305-52757-0281"]
    assert flagged[np.isin(ids, named)].sum() == len(named), table.loc[np.isin(ids, named)].T


def test_physics_disagrees_rarely_fires_on_right_calls_of_simulated_spectra():
    """Held-out simulated type 1 and type 2 over the whole redshift range, as if the SVM called each
    right: ≤ 5 % of the type 1 flagged (the baseline's misses: broad lines of FWHM ≳ 11,000 km/s,
    wider than the `balmer` grid's Hα window can hold, docs/applicability.md) and ≤ 6 % of the type 2
    (measured 3.5 %: type 2 whose narrow lines carry an outflow wing of 1,100–3,600 km/s, on Hα as
    on [O III], which the baseline takes for a weak broad Hα; ≤ 1 % while the simulator put the wing
    on [O III] alone). ~5 ms of line fits per spectrum."""
    from agnlens.models.applicability import physics_disagrees
    from agnlens.models.baseline import measure

    spectra = simulate_set(400, seed=31, grid="balmer", redshift="full", convention="spectroscopic",
                           counts={"type1": 200, "type2": 200})
    truth = np.asarray(spectra.labels).astype(str)
    flagged = physics_disagrees(measure(spectra), truth)
    assert flagged[truth == "type1"].mean() <= 0.05
    assert flagged[truth == "type2"].mean() <= 0.06
