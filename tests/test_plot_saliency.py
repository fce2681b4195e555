"""Saliency figures: assert on the artists, never on pixels."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from agnlens.explain.attribution import Saliency
from agnlens.explain.curves import Faithfulness
from agnlens.explain.linestats import centre_wings, line_table
from agnlens.lines import velocity
from agnlens.plot.line_labels import line_label_artists, mark_lines
from agnlens.plot.saliency import (
    BAND,
    attribution_label,
    plot_centre_wings,
    plot_faithfulness,
    plot_line_table,
    plot_saliency,
    shared_limit,
    shared_scale_note,
    spectrum_line,
)
from agnlens.plot.saliency_gallery import plot_gallery, plot_saliency_panels
from agnlens.preprocess import get_grid

WL = get_grid("paper").wavelength


@pytest.fixture(scope="module")
def sal():
    rng = np.random.default_rng(0)
    v = velocity(WL, 4862.68)
    n = 6
    values = -np.exp(-0.5 * (v / 400) ** 2) + 0.4 * np.exp(-0.5 * ((np.abs(v) - 2500) / 700) ** 2)
    values = values[None] * rng.uniform(0.5, 2, (n, 1))
    flux = 1 + 2 * np.exp(-0.5 * (v / 2000) ** 2)[None].repeat(n, 0)
    proba = np.tile([0.7, 0.2, 0.1], (n, 1))
    return Saliency(values, WL, flux, np.zeros(n, int), proba, ["type1", "type2", "intermediate"], "gradient",
                    spec_id=[f"0266-51602-00{i:02d}" for i in range(n)], labels=["type1", "type2"] * 3)


def _words(text: str) -> str:
    return " ".join(text.split())


def _band(ax):
    """The attribution band of a spectrum's Axes: its QuadMesh."""
    (band,) = ax.child_axes
    (mesh,) = band.collections
    return mesh


def _panels(fig):
    return [a for a in fig.axes if a.get_visible() and a.child_axes]


def test_plot_saliency_draws_the_spectrum_as_a_visible_line_and_the_attribution_as_a_band(sal):
    ax = plot_saliency(WL, sal.flux[0], sal.values[0], title="0266-51602-0000 type1")
    assert isinstance(ax.figure, Figure)
    line = spectrum_line(ax)
    # the spectrum: every pixel, one solid dark colour whatever the attribution, visible
    assert line.get_visible() and line.get_alpha() in (None, 1.0) and line.get_linewidth() >= 0.5
    assert np.array_equal(line.get_xdata(), WL) and np.array_equal(line.get_ydata(), sal.flux[0])
    assert to_rgba(line.get_color()) == to_rgba("black")
    lo, hi = ax.get_ylim()
    assert lo < sal.flux[0].min() and sal.flux[0].max() < hi  # nothing of it clipped
    # the band beneath: one cell per pixel, the values themselves, a symmetric diverging scale
    mesh = _band(ax)
    assert np.array_equal(np.ravel(mesh.get_array()), sal.values[0])
    assert mesh.get_cmap().name == "RdBu_r"
    assert mesh.norm.vmin == -mesh.norm.vmax == pytest.approx(-np.abs(sal.values[0]).max())
    band = ax.child_axes[0]
    assert band.get_shared_x_axes().joined(band, ax)
    # the band lies below the trace: the trace's lowest point is above the band's top
    band_top = ax.transAxes.transform((0, BAND))[1]
    assert ax.transData.transform((WL[0], sal.flux[0].min()))[1] > band_top
    # a colour bar that says what the colours are, the lines marked
    (cbar,) = [a for a in ax.figure.axes if a is not ax]
    assert cbar.get_ylabel().startswith("∂p/∂flux")
    assert ax.get_xlabel() == "rest wavelength (Å)" and "5100" in ax.get_ylabel()
    texts = [t.get_text() for t in line_label_artists(ax)]
    assert "Hβ" in texts and "[O III]" in texts and "Hα" not in texts
    assert "0266-51602-0000" in ax.get_title()


@pytest.mark.parametrize("zoom", [False, True])
def test_the_colour_bar_label_fits_in_the_figure(zoom):
    from agnlens.preprocess import get_grid

    wl = get_grid("balmer").wavelength
    flux = 1 + np.exp(-0.5 * ((wl - 6564.61) / 30) ** 2)
    label = f"{attribution_label('smoothgrad', 'intermediate')}\n{shared_scale_note(1000)}"
    ax = plot_saliency(wl, flux, np.gradient(flux), zoom=zoom, vmax=0.1, colorbar_label=label)
    canvas = FigureCanvasAgg(ax.figure)
    canvas.draw()
    (cbar,) = [a for a in ax.figure.axes if a.get_label() == "<colorbar>"]
    box = cbar.yaxis.label.get_window_extent(canvas.get_renderer())
    page = ax.figure.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1


def test_flux_ticks_stay_beside_the_spectrum_not_the_band(sal):
    ax = plot_saliency(WL, sal.flux[0], sal.values[0])
    FigureCanvasAgg(ax.figure).draw()
    lo, hi = ax.get_ylim()
    ticks = [t for t in ax.get_yticks() if lo <= t <= hi]
    assert ticks and min(ticks) >= lo + BAND * (hi - lo)


def test_the_colour_bar_names_the_method_and_the_class_from_the_saliency_result(sal):
    ax = sal.plot(0)
    (cbar,) = [a for a in ax.figure.axes if a is not ax]
    assert _words(cbar.get_ylabel()) == "∂p(type 1)/∂flux, per unit normalised flux"  # lines wrapped to fit
    other = Saliency(sal.values, WL, sal.flux, np.ones(len(sal), int), sal.probabilities, sal.classes,
                     "integrated-gradients")
    ax = other.plot(0)
    (cbar,) = [a for a in ax.figure.axes if a is not ax]
    assert _words(cbar.get_ylabel()) == "Integrated Gradients: Δp(type 2) per pixel"
    assert attribution_label("a-new-method", "type1") == "a-new-method: attribution to p(type 1)"


def test_saliency_figure_title_says_what_why_and_what_is_explained(sal):
    rows = Saliency(sal.values, WL, sal.flux, sal.target_index, sal.probabilities, sal.classes, "gradient",
                    spec_id=sal.spec_id, labels=["type2", "", "type1", "", "", ""],
                    reason=["misclassified", "random", "input", "", "", ""])
    first, second, third = (rows.figure_title(i).split("\n") for i in range(3))
    assert first[0] == "0266-51602-0000 · misclassified test spectrum"
    assert first[1].startswith("predicted type 1, p = 0.70 (type 2 0.20, intermediate 0.10)")
    assert first[1].endswith("catalogue: type 2 (disagrees)")
    assert first[2].startswith("explained: p(type 1) by gradient · largest |value| ")
    assert second[0].endswith("random test sample") and "catalogue" not in second[1]  # label unknown
    assert third[0].endswith("input spectrum") and third[1].endswith("catalogue: type 1")
    assert rows.figure_title(3).split("\n")[0] == "0266-51602-0003"  # no reason recorded: none claimed
    short = rows.figure_title(0, short=True, reason="catalogue disagrees").split("\n")
    assert short[0].endswith("· catalogue disagrees") and short[1].startswith("predicted type 1, p = 0.70")
    assert f"{np.abs(sal.values[0]).max():.1e}" in short[2]
    assert sal.plot("0266-51602-0003").get_title().startswith("0266-51602-0003")


def test_plot_saliency_on_given_axes_and_shape_check(sal):
    fig = Figure()
    ax = fig.add_subplot()
    assert plot_saliency(WL, sal.flux[0], sal.values[0], ax=ax, colorbar=False, lines=False) is ax
    assert len(fig.axes) == 1 and not ax.texts
    with pytest.raises(ValueError, match="one shape"):
        plot_saliency(WL, sal.flux[0], sal.values[0][:10])


def test_panels_one_per_class_share_a_scale(sal):
    maps = {"type1": sal.values[0], "type2": -0.5 * sal.values[0], "intermediate": 0.1 * sal.values[0]}
    fig = plot_saliency_panels(WL, sal.flux[0], maps, probabilities=[0.7, 0.2, 0.1], title="0266-51602-0000")
    panels = _panels(fig)
    assert len(panels) == 3
    assert len({(_band(a).norm.vmin, _band(a).norm.vmax) for a in panels}) == 1
    assert [a.get_title() for a in panels][1] == "attribution of p(type 2), p = 0.200"
    assert fig.get_suptitle() == "0266-51602-0000"
    assert len(fig.axes) == 4  # one colour bar for the three


def test_gallery_shares_one_colour_scale_and_one_colour_bar(sal):
    fig = plot_gallery(sal, [0, 2, 4, 5], ncols=3)
    panels = _panels(fig)
    assert len(panels) == 4 and sum(not a.get_visible() for a in fig.axes) == 2
    # one limit for every panel: the shared limit of the maps drawn, not each map's own maximum
    (limit,) = {_band(a).norm.vmax for a in panels}
    assert limit == pytest.approx(shared_limit(sal.values[[0, 2, 4, 5]]))
    assert len({np.abs(sal.values[i]).max() for i in (0, 2, 4, 5)}) == 4  # the maps' own scales differ
    (cbar,) = [a for a in fig.axes if a.get_visible() and not a.child_axes]
    assert "one scale for 4 maps: 99.5th pct of |value|" in _words(cbar.get_xlabel())
    assert "∂p(type 1)/∂flux" in cbar.get_xlabel()
    assert cbar.get_xlim() == pytest.approx((-limit, limit))
    assert all("Å" in a.get_xlabel() for a in panels)
    assert all(spectrum_line(a).get_visible() for a in panels)
    assert panels[2].get_title().startswith("0266-51602-0004")
    assert "gradient" in fig.get_suptitle()
    # a given limit is used as it is
    fig = plot_gallery(sal, [0, 1], vmax=0.5)
    assert {_band(a).norm.vmax for a in _panels(fig)} == {0.5}


def test_gallery_panel_titles_say_why_each_spectrum_is_shown(sal):
    fig = plot_gallery(sal, [0, 1], reasons=["misclassified", "random"])
    first, second = (a.get_title() for a in _panels(fig))
    assert "misclassified test spectrum" in first and "random test sample" in second
    with pytest.raises(ValueError, match="1 reasons for 2 panels"):
        plot_gallery(sal, [0, 1], reasons=["input"])


def test_shared_limit_is_a_high_percentile_of_all_values():
    values = np.zeros((2, 1000))
    values[0, :500] = np.linspace(-1, 1, 500)
    values[1, 7] = 1e6  # one outlier does not set the scale
    limit = shared_limit(values)
    assert limit == pytest.approx(np.percentile(np.abs(values), 99.5))
    assert limit < 1.0
    assert shared_limit(np.full((2, 5), 1e-30)) == 1.0  # zero to round-off: a unit scale, no blow-up
    sparse = np.zeros((3, 1000))
    sparse[0, 0] = 0.2  # most pixels exactly zero: the largest value
    assert shared_limit(sparse) == 0.2


def test_centre_wings_figure(sal):
    cw = centre_wings(sal, n_boot=20)
    ax = plot_centre_wings(cw)
    labels = [line.get_label() for line in ax.get_lines()]
    assert any(lab.startswith("type1") for lab in labels)
    assert "Hbeta" in ax.get_xlabel()
    fig = plot_centre_wings([cw, cw])
    assert isinstance(fig, Figure) and len(fig.axes) == 2


def test_faithfulness_figure_has_both_panels():
    f = np.linspace(0, 1, 11)
    curves = {"fraction": f, "deletion": {"gradient": 1 - f, "random": 1 - 0.5 * f},
              "insertion": {"gradient": f, "random": 0.5 * f}}
    fig = plot_faithfulness(curves)
    assert len(fig.axes) == 2
    assert "deletion" in fig.axes[0].get_title() and "insertion" in fig.axes[1].get_title()
    assert {ln.get_label() for ln in fig.axes[0].get_lines()} == {"gradient", "random"}
    import pandas as pd

    table = pd.DataFrame({"method": ["gradient"], "deletion_auc": [0.5], "insertion_auc": [0.5]})
    fig = plot_faithfulness(Faithfulness(table=table, curves=curves))
    assert "gradient (AUC 0.500)" in {ln.get_label() for ln in fig.axes[0].get_lines()}
    with pytest.raises(TypeError, match="Faithfulness result or its curves"):
        plot_faithfulness([1, 2])


def test_line_table_heat_map(sal):
    table = line_table(sal)
    ax = plot_line_table(table)
    (image,) = ax.images
    n_lines = table["line"].nunique()
    assert image.get_array().shape == (n_lines, table["class"].nunique())
    assert image.norm.vmin == -image.norm.vmax
    assert [t.get_text() for t in ax.get_yticklabels()][: 2] == list(table["line"].unique()[:2])
    ax = plot_line_table(table, value="share_abs")
    assert ax.images[0].norm.vmin == 0
    with pytest.raises(ValueError, match="no column 'nope'"):
        plot_line_table(table, value="nope")


def test_a_map_zero_to_round_off_has_a_grey_band_and_its_true_scale_written(sal):
    tiny = sal.values[0] * 1e-33
    ax = plot_saliency(WL, sal.flux[0], tiny, note="not applicable: kernel collapse", colorbar=False)
    mesh = _band(ax)
    assert mesh.get_array() is None  # one grey, not coloured by noise
    assert spectrum_line(ax).get_visible()
    text = " ".join(t.get_text() for t in ax.texts)
    assert "not applicable: kernel collapse" in text
    assert f"{np.abs(tiny).max():.1e}" in text


def test_zoom_panels_and_fe_ii_bands(sal):
    from agnlens.preprocess import get_grid

    wl = get_grid("balmer").wavelength
    flux = 1 + np.exp(-0.5 * ((wl - 5008.24) / 2.0) ** 2) + 3 * np.exp(-0.5 * ((wl - 6564.61) / 30) ** 2)
    values = np.gradient(flux)
    ax = plot_saliency(wl, flux, values, zoom=True, title="x")
    fig = ax.figure
    traced = _panels(fig)
    assert len(traced) == 3
    assert sorted(a.get_title() for a in traced[1:]) == ["zoom: Hα–[N II]", "zoom: Hβ–[O III]"]
    zoom = next(a for a in traced[1:] if "Hα" in a.get_title())
    assert spectrum_line(zoom).get_linewidth() > spectrum_line(ax).get_linewidth()
    assert zoom.get_xlim()[1] - zoom.get_xlim()[0] < 150
    (limit,) = {_band(a).norm.vmax for a in traced}  # one scale
    assert limit == pytest.approx(np.abs(values).max())
    spans = [p for p in ax.patches if p.get_x() in (4400.0, 5100.0)]
    assert len(spans) == 2 and sum(t.get_text() == "Fe II" for t in ax.texts) == 2
    # the study's grid has no Hα: one zoom panel only
    ax = plot_saliency(WL, sal.flux[0], sal.values[0], zoom=True)
    assert len(_panels(ax.figure)) == 2


def test_gallery_marks_not_applicable_panels(sal):
    fig = plot_gallery(sal, [0, 1], flags=["kernel-collapse;out-of-distribution", ""] + [""] * 4)
    first, second = _panels(fig)
    assert any("not applicable: kernel collapse, out of distribution" in t.get_text() for t in first.texts)
    assert not any("not applicable" in t.get_text() for t in second.texts)


def test_mark_lines_inside_a_subfigure():
    wl = np.linspace(3729.0, 5266.0, 500)
    ax = Figure(figsize=(8, 3)).subfigures(1, 2)[0].add_subplot()
    ax.set_xlim(wl[0], wl[-1])
    mark_lines(ax, wl)
    FigureCanvasAgg(ax.figure.figure).draw()
    assert "[O II]" in {t.get_text() for t in line_label_artists(ax) if t.get_visible()}
