"""Line tables and centre-vs-wings on synthetic saliency maps with a known pattern."""

from __future__ import annotations

import numpy as np
import pytest

from agnlens.explain.attribution import Saliency
from agnlens.explain.linestats import centre_wings, covered_lines, line_table
from agnlens.lines import velocity
from agnlens.preprocess import get_grid


def synthetic(wl, n_per_class=20, seed=0, line_centre=4862.68):
    """Class "type1": negative core, positive wings around the line; "type2": the opposite.
    Small noise everywhere else."""
    rng = np.random.default_rng(seed)
    v = velocity(wl, line_centre)
    core = np.exp(-0.5 * (v / 300) ** 2)
    wings = np.exp(-0.5 * ((np.abs(v) - 2500) / 700) ** 2)
    pattern = -1.0 * core + 0.5 * wings
    values, target = [], []
    for k, sign in enumerate((1.0, -1.0)):
        amp = rng.uniform(0.5, 1.5, n_per_class)[:, None]
        values.append(sign * amp * pattern + 0.01 * rng.standard_normal((n_per_class, wl.size)))
        target += [k] * n_per_class
    values = np.vstack(values)
    n = values.shape[0]
    proba = np.full((n, 2), 0.5)
    return Saliency(values, wl, np.ones_like(values), np.array(target), proba, ["type1", "type2"], "synthetic",
                    labels=np.where(np.array(target) == 0, "type1", "type2"))


@pytest.fixture(scope="module")
def paper_saliency():
    return synthetic(get_grid("paper").wavelength)


def test_centre_wings_recovers_the_sign_pattern(paper_saliency):
    cw = centre_wings(paper_saliency, "Hbeta", core_kms=600, wing_kms=(1000, 4000), n_boot=200)
    t = cw.table.set_index("class")
    assert list(cw.table.columns[:6]) == ["line", "class", "centre_mean", "wings_mean", "contrast", "n_spectra"]
    assert t.loc["type1", "centre_mean"] < 0 < t.loc["type1", "wings_mean"]
    assert t.loc["type2", "centre_mean"] > 0 > t.loc["type2", "wings_mean"]
    assert t.loc["type1", "contrast"] == 1.0 and t.loc["type2", "contrast"] == 1.0
    assert t.loc["type1", "n_spectra"] == 20 and t.loc["all", "n_spectra"] == 40
    # the bootstrap interval lies on the side of the sign
    assert t.loc["type1", "centre_ci_hi"] < 0 < t.loc["type1", "wings_ci_lo"]
    assert bool(t.loc["type1", "opposite_means"])
    # profiles are on a common velocity grid, the stacked mean shows the dip at v = 0
    prof = cw.mean_profile("type1")
    assert prof.shape == cw.velocity.shape
    assert prof[np.argmin(np.abs(cw.velocity))] < 0 and prof[np.argmin(np.abs(cw.velocity - 2500))] > 0
    assert set(cw.summary["classes"]) == {"type1", "type2", "all"}


def test_centre_wings_of_a_same_sign_map_has_no_contrast():
    wl = get_grid("paper").wavelength
    sal = synthetic(wl)
    sal.values = np.abs(sal.values) + 1e-3
    t = centre_wings(sal, "Hbeta", n_boot=50).table.set_index("class")
    assert t.loc["all", "contrast"] == 0.0
    assert not t.loc["all", "opposite_means"]


def test_centre_wings_for_halpha_on_the_balmer_grid():
    wl = get_grid("balmer").wavelength
    sal = synthetic(wl, n_per_class=5, line_centre=6564.61)
    assert covered_lines(sal) == ["Hbeta", "Halpha"]
    cw = centre_wings(sal, "Halpha", n_boot=50)
    t = cw.table.set_index("class")
    assert t.loc["type1", "centre_mean"] < 0 < t.loc["type1", "wings_mean"]
    assert cw.caveats  # [N II] sits in Hα's wings


def test_centre_wings_refuses_a_line_outside_the_grid(paper_saliency):
    assert covered_lines(paper_saliency) == ["Hbeta"]
    with pytest.raises(ValueError, match="line Halpha .* is not inside the grid 3729–5266 Å"):
        centre_wings(paper_saliency, "Halpha")
    with pytest.raises(ValueError, match="core_kms"):
        centre_wings(paper_saliency, "Hbeta", core_kms=2000, wing_kms=(1000, 4000))


def test_line_table_finds_the_salient_line(paper_saliency):
    table = line_table(paper_saliency)
    expected = ["line", "kind", "lo", "hi", "class", "mean_saliency", "mean_abs_saliency", "share_abs"]
    assert list(table.columns[:8]) == expected
    for cls in ("type1", "type2", "all"):
        rows = table[table["class"] == cls]
        assert rows.iloc[np.argmax(rows["share_abs"].to_numpy())]["line"] == "Hbeta"
        assert rows["share_abs"].sum() == pytest.approx(1.0)
    # lines of the paper grid only: no Hα, but Hγ, [O III], Fe II and continuum windows
    assert "Halpha" not in set(table["line"])
    assert {"Hgamma", "OIII_5008", "FeII_blue", "cont_5100"} <= set(table["line"])
    # the sign: type 1's narrow Hβ window (core dominated) is negative, type 2's positive
    narrow = line_table(paper_saliency, half_width_kms=500.0)
    hb = narrow[narrow["line"] == "Hbeta"].set_index("class")
    assert hb.loc["type1", "mean_saliency"] < 0 < hb.loc["type2", "mean_saliency"]


def test_line_table_is_per_pixel_normalised():
    # uniform |saliency| everywhere: every window, wide or narrow, has the same per-pixel share
    wl = get_grid("paper").wavelength
    values = np.ones((4, wl.size))
    sal = Saliency(values, wl, np.ones_like(values), np.zeros(4, int), np.full((4, 2), 0.5), ["a", "b"], "const")
    table = line_table(sal)
    rows = table[table["class"] == "a"]
    np.testing.assert_allclose(rows["share_abs"], 1.0 / len(rows))
    np.testing.assert_allclose(rows["enrichment"], 1.0)
    assert rows["n_pixels"].max() > 3 * rows["n_pixels"].min()  # the windows do differ in width


def test_line_table_groups_by_true_label(paper_saliency):
    table = line_table(paper_saliency, by="label")
    assert set(table["class"]) == {"type1", "type2", "all"}
    with pytest.raises(ValueError, match="by must be"):
        line_table(paper_saliency, by="colour")


def _object_maps(wl, widths, seed=0, sign_pattern=True):
    """Maps with a negative core of each object's narrow width and positive wings over each
    object's broad line (sign_pattern), or smooth random maps with no such pattern."""
    rng = np.random.default_rng(seed)
    v = velocity(wl, 4862.68)
    values = []
    for narrow, broad in widths:
        if sign_pattern:
            core = np.exp(-0.5 * (v / (narrow / 2.355)) ** 2)
            wings = np.exp(-0.5 * ((np.abs(v) - 0.75 * broad) / (0.15 * broad)) ** 2)
            values.append(-core + 0.4 * wings + 0.02 * rng.standard_normal(wl.size))
        else:  # wiggles on the scale of the windows
            values.append(np.convolve(rng.standard_normal(wl.size), np.ones(15) / 15, mode="same"))
    values = np.array(values)
    n = len(values)
    return Saliency(values, wl, np.ones_like(values), np.zeros(n, int), np.full((n, 2), 0.5), ["type1", "type2"],
                    "synthetic", spec_id=[f"s{i}" for i in range(n)])


def test_centre_wings_test_uses_each_objects_widths_and_a_null():
    import pandas as pd

    from agnlens.explain.wingtest import centre_wings_test, object_windows

    wl = get_grid("paper").wavelength
    rng = np.random.default_rng(1)
    widths = list(zip(rng.uniform(250, 600, 30), rng.uniform(2000, 12000, 30)))
    table = pd.DataFrame({"spec_id": [f"s{i}" for i in range(30)] + ["t2"],
                          "hb_fwhm_narrow": [w[0] for w in widths] + [400.0],
                          "hb_fwhm_broad": [w[1] for w in widths] + [np.nan]})
    sal = _object_maps(wl, widths)
    res = centre_wings_test(sal, table, n_draws=500, n_boot=200)
    assert res.n_tested == 30 and res.n_opposite == 30 and res.n_untestable == 0
    assert res.p_value < 0.01 and res.null_fraction < 0.8
    assert res.centre_ci[1] < 0 < res.wings_ci[0]
    # the windows follow the widths: a 12,000 km/s line's wings reach far beyond a 3,000 km/s one's
    row = res.table.set_index("spec_id")
    wide, narrow = row["fwhm_broad"].idxmax(), row["fwhm_broad"].idxmin()
    assert row.loc[wide, "wing_hi_kms"] > 2 * row.loc[narrow, "wing_hi_kms"]
    # Fe II 4925 (+3,800 km/s) and [O III] 4960 are kept out of Hβ's wings
    _, wings = object_windows(wl, "Hbeta", 400.0, 12000.0)
    assert not wings[np.abs(velocity(wl, 4925.3)) < 1000].any()
    assert not wings[np.abs(velocity(wl, 4960.30)) < 400].any()

    # no pattern: opposite signs as often as random pairs, p not small
    noise = _object_maps(wl, widths, seed=2, sign_pattern=False)
    res0 = centre_wings_test(noise, table, n_draws=500, n_boot=200)
    assert res0.p_value > 0.05
    # a spectrum without a broad component is not testable
    only_t2 = centre_wings_test(sal, table.assign(hb_fwhm_broad=np.nan), n_draws=10)
    assert only_t2.n_tested == 0 and only_t2.n_untestable == 30 and "not testable" in only_t2.note


def test_centre_wings_leaves_out_spectra_without_a_broad_line():
    import pandas as pd

    from agnlens.explain.linestats import CENTRE_WINGS_COLUMNS

    sal = synthetic(get_grid("paper").wavelength, n_per_class=6)
    sal.predicted = np.array(["type1"] * 6 + ["type2"] * 6)  # the second half predicted type 2
    widths = pd.DataFrame({"spec_id": sal.spec_id, "hb_fwhm_broad": [4000.0] * 4 + [np.nan] * 8})
    cw = centre_wings(sal, "Hbeta", widths=widths, n_boot=20)
    assert cw.excluded == {"predicted type 2": 6, "without a measured broad Hβ": 2} and cw.n_excluded == 8
    t = cw.table.set_index("class")
    assert t.loc["all", "n_spectra"] == 4 and "type2" not in t.index
    # the statistics are those of the four kept spectra alone
    only = centre_wings(sal[np.arange(4)], "Hbeta", n_boot=20).table.set_index("class")
    assert t.loc["all", "centre_mean"] == only.loc["all", "centre_mean"]
    assert "8 spectra left out of Hbeta" in cw.excluded_text() and "6 predicted type 2" in cw.excluded_text()
    assert cw.summary["n_excluded"] == 8
    # nobody with wings: an empty table, everyone counted
    none = centre_wings(sal, "Hbeta", widths=widths.assign(hb_fwhm_broad=np.nan), n_boot=20)
    assert none.table.empty and list(none.table.columns) == CENTRE_WINGS_COLUMNS and none.n_excluded == 12
