"""Figure files: every format writes a valid file, PNG always beside a vector one, options checked."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from agnlens.plot.saliency import plot_saliency
from agnlens.plot.save import DPI, figure_png, save_figure


def _figure():
    wl = np.linspace(4000.0, 6700.0, 600)
    flux = 1 + np.exp(-0.5 * ((wl - 6564.61) / 20) ** 2)
    return plot_saliency(wl, flux, np.gradient(flux), title="0266-51602-0001").figure


def test_png_at_the_default_print_resolution(tmp_path):
    fig = _figure()
    (png,) = save_figure(fig, tmp_path / "a.png")
    with Image.open(png) as im:
        assert im.format == "PNG" and im.info["dpi"] == pytest.approx((DPI, DPI), abs=0.05)
        assert im.width == pytest.approx(fig.get_figwidth() * DPI, abs=1)
    assert DPI >= 150


def test_in_memory_png_at_the_asked_resolution(tmp_path):
    fig = _figure()
    (png,) = save_figure(fig, tmp_path / "a.png", dpi=90)
    with Image.open(png) as from_file, Image.open(io.BytesIO(figure_png(fig, dpi=90))) as in_memory:
        assert in_memory.format == "PNG" and in_memory.size == from_file.size
        assert in_memory.width == pytest.approx(fig.get_figwidth() * 90, abs=1)
        assert np.asarray(in_memory.convert("L")).min() < 64  # the black spectrum line is drawn
    with pytest.raises(ValueError, match="dpi must be"):
        figure_png(fig, dpi=0)


def test_pdf_and_svg_are_valid_and_come_with_a_png(tmp_path):
    fig = _figure()
    pdf = save_figure(fig, tmp_path / "b.png", format="pdf", dpi=72)
    assert [p.name for p in pdf] == ["b.png", "b.pdf"]
    assert (tmp_path / "b.pdf").read_bytes().startswith(b"%PDF")
    svg = save_figure(fig, tmp_path / "c", format="svg", dpi=72)
    assert [p.suffix for p in svg] == [".png", ".svg"]
    root = ET.parse(tmp_path / "c.svg").getroot()
    assert root.tag.endswith("svg")
    text = (tmp_path / "c.svg").read_text()
    assert "0266-51602-0001" in text or "glyph" in text  # the title is in it (as text or as glyphs)
    with Image.open(tmp_path / "c.png") as im:
        assert im.format == "PNG" and im.info["dpi"] == pytest.approx((72, 72), abs=0.05)
    # no PNG when asked not to
    assert [p.suffix for p in save_figure(fig, tmp_path / "d", format="pdf", png=False)] == [".pdf"]
    assert not (tmp_path / "d.png").exists()


@pytest.mark.parametrize("fmt", ["pdf", "svg"])
def test_vector_files_are_reproducible(tmp_path, fmt):
    # a rerun draws the same figure afresh: the same bytes (no creation date in the file)
    save_figure(_figure(), tmp_path / "a", format=fmt, png=False)
    save_figure(_figure(), tmp_path / "b", format=fmt, png=False)
    assert (tmp_path / f"a.{fmt}").read_bytes() == (tmp_path / f"b.{fmt}").read_bytes()


def test_bad_format_or_dpi_says_what_is_allowed(tmp_path):
    fig = _figure()
    with pytest.raises(ValueError, match="one of png, pdf, svg, got 'jpg'"):
        save_figure(fig, tmp_path / "a", format="jpg")
    with pytest.raises(ValueError, match="from 10 to 1200, got 0"):
        save_figure(fig, tmp_path / "a", dpi=0)
    assert not list(tmp_path.iterdir())
