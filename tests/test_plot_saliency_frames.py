"""Saliency frames: each frame must be the figure a full draw of the same figure gives."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image

from agnlens.explain.attribution import Saliency
from agnlens.lines import velocity
from agnlens.plot.saliency import plot_saliency, shared_limit, spectrum_line
from agnlens.plot.saliency_frames import SaliencyFrames, png_bytes, saliency_images
from agnlens.preprocess import get_grid

WL = get_grid("paper").wavelength


@pytest.fixture(scope="module")
def sal():
    rng = np.random.default_rng(1)
    v = velocity(WL, 4862.68)
    n = 3
    values = -np.exp(-0.5 * (v / 400) ** 2) + 0.4 * np.exp(-0.5 * ((np.abs(v) - 2500) / 700) ** 2)
    values = values[None] * np.array([[2e-2], [3e-5], [1.5]]) + rng.normal(0, 1e-3, (n, WL.size)) * [[1], [1e-3], [1]]
    flux = (1 + np.array([[2.0], [40.0], [0.3]]) * np.exp(-0.5 * (v / 2000) ** 2)[None]
            + rng.normal(0, 0.05, (n, WL.size)))
    proba = np.tile([0.7, 0.2, 0.1], (n, 1))
    return Saliency(values, WL, flux, np.zeros(n, int), proba, ["type1", "type2", "intermediate"], "gradient",
                    spec_id=[f"0266-51602-00{i:02d}" for i in range(n)], labels=["type1", "type2", "type1"])


def _full_draw(frames: SaliencyFrames) -> np.ndarray:
    """The frames' figure in its current state, drawn from scratch (every artist, normal order)."""
    fig = frames.figure
    for artist in fig.findobj():
        if artist.get_animated():
            artist.set_animated(False)
    for ax in frames.panels:
        for text in ax.texts:
            if text in frames.overlaid:
                text.set_visible(True)
        ax.yaxis.label.set_visible(True)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.array(canvas.buffer_rgba())


def _differing(a: np.ndarray, b: np.ndarray, tol: int = 24) -> float:
    return float(np.mean(np.abs(a.astype(int) - b.astype(int)).max(axis=2) > tol))


@pytest.mark.parametrize("zoom", [False, True])
def test_a_frame_is_the_full_drawing_of_its_figure(sal, zoom):
    frames = SaliencyFrames(WL, vmax=0.05, zoom=zoom, dpi=72)
    for i in (0, 2):  # the second frame after another one: nothing of the first one is left
        image = frames.render(sal.flux[i], sal.values[i], title=sal.figure_title(i))
    # the frame's artists carry this spectrum on the fixed scale
    assert np.array_equal(spectrum_line(frames.ax).get_ydata(), sal.flux[2])
    assert np.array_equal(np.ravel(frames.meshes[0].get_array()), sal.values[2])
    assert {m.norm.vmax for m in frames.meshes} == {0.05}
    assert frames.colorbar.ax.get_ylim() == pytest.approx((-0.05, 0.05))
    assert len(frames.zoom_axes) == int(zoom)
    reference = _full_draw(frames)
    assert image.shape == reference.shape
    # the same picture: only anti-aliased edge pixels may differ by rounding
    assert _differing(image, reference) < 0.002
    # and not merely a blank or static one: a different spectrum gives a different picture
    other = SaliencyFrames(WL, vmax=0.05, zoom=zoom, dpi=72).render(sal.flux[0], sal.values[0],
                                                                    title=sal.figure_title(0))
    assert _differing(image, other) > 0.01


def test_frames_do_not_depend_on_what_was_drawn_before(sal):
    images = list(saliency_images(sal, zoom=True, dpi=72))
    assert len(images) == len(sal)
    alone = next(saliency_images(sal, [1], zoom=True, dpi=72, vmax=shared_limit(sal.values), n_maps=len(sal)))
    assert np.array_equal(images[1], alone)


def test_saliency_images_share_one_scale_and_name_each_class(sal, monkeypatch):
    import agnlens.plot.saliency_frames as module

    made = []
    real = module.SaliencyFrames

    def spy(*args, **kwargs):
        made.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "SaliencyFrames", spy)
    mixed = Saliency(sal.values, WL, sal.flux, [0, 1, 0], sal.probabilities, sal.classes, "gradient")
    list(saliency_images(mixed, dpi=50))
    assert len(made) == 2  # one figure per explained class, both on the run's one scale
    assert [m["vmax"] for m in made] == pytest.approx([shared_limit(sal.values)] * 2)
    assert ["type 1" in made[0]["colorbar_label"], "type 2" in made[1]["colorbar_label"]] == [True, True]
    assert all("one scale for 3 maps" in m["colorbar_label"] for m in made)


def test_a_map_zero_to_round_off_is_drawn_as_a_new_figure(sal):
    frames = SaliencyFrames(WL, vmax=0.05, zoom=True, dpi=72)
    zero = np.full(WL.size, 1e-20)
    image = frames.render(sal.flux[0], zero, title="collapsed")
    fig = plot_saliency(WL, sal.flux[0], zero, zoom=True, title="collapsed", vmax=0.05).figure
    fig.set_dpi(72)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    assert np.array_equal(image, np.asarray(canvas.buffer_rgba()))


def test_render_checks_shapes(sal):
    frames = SaliencyFrames(WL, vmax=1.0, zoom=False, dpi=50)
    with pytest.raises(ValueError, match="frames' grid"):
        frames.render(sal.flux[0][:-1], sal.values[0][:-1])


def test_png_bytes_round_trip(sal):
    image = next(saliency_images(sal, zoom=False, dpi=72))
    with Image.open(io.BytesIO(png_bytes(image, dpi=72))) as png:
        assert png.mode == "RGB" and png.info["dpi"] == pytest.approx((72, 72), abs=0.05)  # stored per metre
        assert np.array_equal(np.asarray(png), image[..., :3])
    # the resolution sets the size: a 7.2-inch figure is 7.2 × dpi pixels wide
    assert next(saliency_images(sal, zoom=False, dpi=100)).shape[1] == 720


def test_frames_with_two_zoom_panels_on_a_log_uniform_grid():
    wl = get_grid("balmer").wavelength  # log-uniform, Hβ–[O III] and Hα–[N II] both inside
    rng = np.random.default_rng(2)
    flux = 1 + 3 * np.exp(-0.5 * ((wl - 6564.61) / 25) ** 2) + rng.normal(0, 0.05, wl.size)
    values = np.gradient(flux) * 0.01
    frames = SaliencyFrames(wl, vmax=0.02, zoom=True, dpi=60)
    frames.render(flux[::-1].copy(), values[::-1].copy(), title="first")
    image = frames.render(flux, values, title="second")
    assert len(frames.zoom_axes) == 2
    for a, sel in zip(frames.panels, frames.pixels):
        assert np.array_equal(spectrum_line(a).get_xdata(), wl[sel])
    assert _differing(image, _full_draw(frames)) < 0.002
