"""Line labels: laid out when drawn, never overlapping, on a real spectrum and on crowded grids.

The check is independent of the layout code: after a full draw, the renderer's own extents of the
labels that are shown are compared pair by pair.
"""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from agnlens.lines import LINES
from agnlens.plot.line_labels import line_label_artists, mark_lines
from agnlens.plot.saliency import plot_saliency
from agnlens.plot.saliency_gallery import plot_gallery


def _drawn_boxes(fig, axes):
    """Per Axes, the window extents of the line labels shown after a full draw."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    return [[(t.get_text(), t.get_window_extent(renderer)) for t in line_label_artists(ax) if t.get_visible()]
            for ax in axes]


def _assert_disjoint(boxes):
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            (a, box_a), (b, box_b) = boxes[i], boxes[j]
            assert not box_a.overlaps(box_b), f"labels {a!r} and {b!r} overlap: {box_a} {box_b}"


@pytest.fixture(scope="module")
def real():
    from agnlens.stages import read_inputs

    from realdata import LABELS, SPECTRA

    spectra, _ = read_inputs([SPECTRA], grid="balmer", labels=LABELS)
    return spectra


@pytest.mark.parametrize("dpi", [72, 200])
def test_labels_of_a_real_spectrum_do_not_overlap(real, dpi):
    wl, flux = real.grid.wavelength, np.asarray(real.flux[0], dtype=float)
    ax = plot_saliency(wl, flux, np.gradient(flux), zoom=True, title="x")
    ax.figure.set_dpi(dpi)
    panels = [a for a in ax.figure.axes if a.child_axes]
    assert len(panels) == 3
    shown = _drawn_boxes(ax.figure, panels)
    for boxes in shown:
        _assert_disjoint(boxes)
    main = {name for name, _ in shown[0]}
    assert {"Hβ", "[O III]", "Hα"} <= main  # the lines that classify an AGN always find a place
    # every label stays inside its Axes
    for a, boxes in zip(panels, shown):
        frame = a.get_window_extent()
        assert all(frame.x0 - 1 <= b.x0 and b.x1 <= frame.x1 + 1 and b.y1 <= frame.y1 + 1 for _, b in boxes)


def test_labels_on_a_crowded_gallery_do_not_overlap(real):
    from agnlens.explain.attribution import Saliency

    n = 12
    flux = np.asarray(real.flux[:n], dtype=float)
    sal = Saliency(np.gradient(flux, axis=1), real.grid.wavelength, flux, np.zeros(n, int), np.tile([0.6, 0.4], (n, 1)),
                   ["type1", "type2"], "gradient", spec_id=real.spec_id[:n])
    fig = plot_gallery(sal, ncols=4, panel_size=(2.0, 1.4))
    panels = [a for a in fig.axes if a.get_visible() and a.child_axes]
    assert len(panels) == n
    for boxes in _drawn_boxes(fig, panels):
        _assert_disjoint(boxes)
        assert boxes  # crowded, yet some labels shown


def test_a_label_at_the_edge_stays_inside_the_axes():
    wl = np.linspace(3729.0, 5266.0, 1000)  # the study's grid: [O II] 3729.9 on its first pixels
    fig = Figure(figsize=(7.0, 2.5), layout="constrained")
    ax = fig.add_subplot()
    ax.set_xlim(wl[0], wl[-1])
    mark_lines(ax, wl)
    (boxes,) = _drawn_boxes(fig, [ax])
    frame = ax.get_window_extent()
    (edge,) = [b for name, b in boxes if name == "[O II]"]
    assert frame.x0 <= edge.x0 and all(frame.x0 <= b.x0 and b.x1 <= frame.x1 for _, b in boxes)


@pytest.mark.parametrize("width", [1.5, 3.0, 9.0])
def test_every_line_on_a_narrow_or_wide_axis(width):
    wl = np.linspace(3700.0, 6750.0, 3000)  # every line of the list in range
    fig = Figure(figsize=(width, 2.0), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(wl, np.ones_like(wl))
    ax.set_xlim(wl[0], wl[-1])
    texts = mark_lines(ax, wl, fontsize=8)
    assert [t.get_text() for t in texts] == [line.label for line in LINES] + ["Fe II", "Fe II"]
    (boxes,) = _drawn_boxes(fig, [ax])
    _assert_disjoint(boxes)
    if width >= 9.0:  # room for every name at least once
        assert {name for name, _ in boxes} == {line.label for line in LINES} | {"Fe II"}


def test_the_layout_follows_the_final_size_of_the_axes():
    # labels placed for one size, then the figure is drawn at another: still disjoint
    wl = np.linspace(4000.0, 6700.0, 2000)
    fig = Figure(figsize=(9.0, 2.5), layout="constrained")
    ax = fig.add_subplot()
    ax.set_xlim(wl[0], wl[-1])
    mark_lines(ax, wl)
    def lowered():  # labels moved under the first row, or hidden
        texts = line_label_artists(ax)
        return sum(not t.get_visible() or t.get_position()[1] < 0.98 for t in texts)

    (wide,) = _drawn_boxes(fig, [ax])
    moved_wide = lowered()
    fig.set_size_inches(1.5, 2.5)
    (narrow,) = _drawn_boxes(fig, [ax])
    _assert_disjoint(narrow)
    assert lowered() > moved_wide
