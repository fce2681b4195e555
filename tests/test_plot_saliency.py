"""Saliency figures: assert on the artists, never on pixels."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from agnlens.explain.faithfulness import Faithfulness
from agnlens.explain.linestats import centre_wings, line_table
from agnlens.explain.saliency import Saliency
from agnlens.lines import velocity
from agnlens.plot.saliency import (
    mark_lines,
    plot_centre_wings,
    plot_faithfulness,
    plot_gallery,
    plot_line_table,
    plot_saliency,
    plot_saliency_panels,
)
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


def _collections(ax):
    if ax.get_label() == "<colorbar>":  # colour bars draw their own LineCollection of dividers
        return []
    return [c for c in ax.collections if isinstance(c, LineCollection)]


def test_plot_saliency_draws_a_coloured_line_with_symmetric_limits(sal):
    ax = plot_saliency(WL, sal.flux[0], sal.values[0], title="0266-51602-0000 type1")
    assert isinstance(ax.figure, Figure)
    (lc,) = _collections(ax)
    lo, hi = lc.norm.vmin, lc.norm.vmax
    assert lo == -hi and hi == pytest.approx(np.abs(sal.values[0]).max())
    assert lc.get_cmap().name == "RdBu_r"
    assert len(lc.get_segments()) == WL.size - 1
    # a colour bar with the label, and the lines marked
    assert any(a.get_ylabel().startswith("∂p/∂flux") for a in ax.figure.axes if a is not ax)
    assert ax.get_xlabel() == "rest wavelength (Å)" and "5100" in ax.get_ylabel()
    texts = [t.get_text() for t in ax.texts]
    assert "Hβ" in texts and "[O III]" in texts and "Hα" not in texts
    assert "0266-51602-0000" in ax.get_title()


def test_saliency_plot_method_titles_with_ids_classes_and_probabilities(sal):
    ax = sal.plot(1)
    title = ax.get_title()
    for needed in ("0266-51602-0001", "true: type2", "predicted: type1", "p(type1)=0.70", "gradient"):
        assert needed in title
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
    panels = [a for a in fig.axes if _collections(a)]
    assert len(panels) == 3
    limits = {(_collections(a)[0].norm.vmin, _collections(a)[0].norm.vmax) for a in panels}
    assert len(limits) == 1
    assert [a.get_title() for a in panels][1] == "saliency of p(type2), p = 0.200"
    assert fig.get_suptitle() == "0266-51602-0000"


def test_gallery_has_one_panel_per_spectrum(sal):
    fig = plot_gallery(sal, [0, 2, 4, 5], ncols=3)
    panels = [a for a in fig.axes if a.get_label() != "<colorbar>"]
    visible = [a for a in panels if a.get_visible()]
    assert len(visible) == 4 and len(panels) == 6
    assert len(fig.axes) - len(panels) == 4  # one colour bar per panel: scales differ
    assert all("Å" in a.get_xlabel() for a in visible)
    assert all(_collections(a) for a in visible)
    assert "0266-51602-0004" in visible[2].get_title()


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


def test_a_map_zero_to_round_off_has_no_stretched_colour_bar_but_its_true_scale(sal):
    tiny = sal.values[0] * 1e-33
    ax = plot_saliency(WL, sal.flux[0], tiny, note="not applicable: kernel collapse")
    assert [a for a in ax.figure.axes if a is not ax] == []  # no colour bar
    (lc,) = _collections(ax)
    assert lc.get_array() is None  # drawn in one grey, not coloured by noise
    text = " ".join(t.get_text() for t in ax.texts)
    assert "not applicable: kernel collapse" in text
    assert f"{np.abs(tiny).max():.1e}" in text


def test_zoom_panels_fe_ii_bands_and_labels_that_do_not_overlap(sal):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from agnlens.preprocess import get_grid

    wl = get_grid("balmer").wavelength
    flux = 1 + np.exp(-0.5 * ((wl - 5008.24) / 2.0) ** 2) + 3 * np.exp(-0.5 * ((wl - 6564.61) / 30) ** 2)
    values = np.gradient(flux)
    ax = plot_saliency(wl, flux, values, zoom=True, title="x")
    fig = ax.figure
    traced = [a for a in fig.axes if _collections(a)]
    assert len(traced) == 3
    assert sorted(a.get_title() for a in traced[1:]) == ["zoom: Hα–[N II]", "zoom: Hβ–[O III]"]
    zoom = next(a for a in traced[1:] if "Hα" in a.get_title())
    assert _collections(zoom)[0].get_linewidth()[0] > _collections(ax)[0].get_linewidth()[0]
    assert zoom.get_xlim()[1] - zoom.get_xlim()[0] < 150
    spans = [p for p in ax.patches if p.get_x() in (4400.0, 5100.0)]
    assert len(spans) == 2 and sum(t.get_text() == "Fe II" for t in ax.texts) == 2
    FigureCanvasAgg(fig).draw()
    renderer = fig.canvas.get_renderer()
    for axes in traced:
        boxes = [t.get_window_extent(renderer) for t in axes.texts if t.get_rotation() == 90]
        assert len(boxes) >= 2
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                assert not boxes[i].overlaps(boxes[j]), (axes.texts[i].get_text(), axes.texts[j].get_text())
    # the study's grid has no Hα: one zoom panel only
    ax = plot_saliency(WL, sal.flux[0], sal.values[0], zoom=True)
    assert len([a for a in ax.figure.axes if _collections(a)]) == 2


def test_gallery_marks_not_applicable_panels(sal):
    fig = plot_gallery(sal, [0, 1], flags=["kernel-collapse;out-of-distribution", ""] + [""] * 4)
    first, second = [a for a in fig.axes if a.get_label() != "<colorbar>"][:2]
    assert any("not applicable: kernel collapse, out of distribution" in t.get_text() for t in first.texts)
    assert not any("not applicable" in t.get_text() for t in second.texts)


def test_mark_lines_inside_a_subfigure():
    # the label spacing needs the axes' width in inches; a SubFigure has no figure width of its own
    wl = np.linspace(3729.0, 5266.0, 500)
    ax = Figure(figsize=(8, 3)).subfigures(1, 2)[0].add_subplot()
    ax.set_xlim(wl[0], wl[-1])
    mark_lines(ax, wl)
    assert "[O II]" in {t.get_text() for t in ax.texts}
