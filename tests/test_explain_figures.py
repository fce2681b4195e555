"""The figures ``agnlens explain`` writes: formats and resolution, one scale, why each is shown."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from agnlens.cli import main
from agnlens.models.svm import SpectrumSVC
from agnlens.simulate import simulate_set
from agnlens.stages import explain

from realdata import SPECTRA


@pytest.fixture(scope="module")
def model_and_spectra():
    train = simulate_set(counts={"type1": 30, "type2": 40, "intermediate": 30}, seed=11)
    model = SpectrumSVC(kernel="linear", C=0.07, class_weight="balanced", random_state=0).fit(
        np.asarray(train.flux, float), train.labels
    )
    return model, simulate_set(counts={"type1": 2, "type2": 2, "intermediate": 1}, seed=3)


def test_explain_writes_svg_beside_every_png_at_the_asked_resolution(model_and_spectra, tmp_path):
    model, spectra = model_and_spectra
    explain(model, spectra, tmp_path, max_figures=2, figure_format="svg", dpi=50)
    figures = tmp_path / "figures"
    for name in ("gallery", "line_table", "centre_wings"):
        assert (figures / f"{name}.png").is_file()
        assert ET.parse(figures / f"{name}.svg").getroot().tag.endswith("svg")
    pngs = sorted((figures / "saliency").glob("*.png"))
    assert len(pngs) == 2 and all(p.with_suffix(".svg").is_file() for p in pngs)
    with Image.open(pngs[0]) as im:
        assert im.info["dpi"] == pytest.approx((50, 50), abs=0.05) and im.width == pytest.approx(7.2 * 50, abs=2)
    # the user's spectra are recorded as such, not as a random sample
    index = pd.read_csv(tmp_path / "saliency" / "index.csv")
    assert set(index["reason"]) == {"input"}


def test_explain_checks_the_figure_options(model_and_spectra, tmp_path):
    model, spectra = model_and_spectra
    with pytest.raises(ValueError, match="one of png, pdf, svg"):
        explain(model, spectra, tmp_path, figure_format="eps")
    with pytest.raises(ValueError, match="from 10 to 1200"):
        explain(model, spectra, tmp_path, dpi=5000)


def test_the_gallery_says_its_panels_are_the_input_spectra(model_and_spectra, tmp_path, monkeypatch):
    import agnlens.plot.saliency_gallery as gallery

    seen = {}
    real = gallery.plot_gallery

    def spy(sal, indices, **kwargs):
        seen.update(kwargs, indices=list(indices))
        return real(sal, indices, **kwargs)

    monkeypatch.setattr(gallery, "plot_gallery", spy)
    model, spectra = model_and_spectra
    result = explain(model, spectra, tmp_path, max_figures=1, dpi=30)
    assert seen["indices"] == list(range(len(spectra)))
    assert seen["title"] == f"{len(spectra)} input spectra" and set(seen["reasons"]) == {"input"}
    assert "random" not in seen["title"]
    assert seen["vmax"] > 0 and seen["vmax"] <= np.abs(result.saliency.values).max()


@pytest.mark.parametrize("command", ["explain", "demo"])
def test_format_and_dpi_options_in_help(command, capsys):
    assert main([command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--format {png,pdf,svg}" in text and "--dpi N" in text
    assert "beside a PNG of the same name (the HTML report embeds the PNGs)" in text


def test_cli_explain_pdf_on_real_spectra(model_and_spectra, tmp_path, capsys):
    from agnlens.models.persistence import save_model

    model, spectra = model_and_spectra
    path = save_model(model, tmp_path / "m.skops", metadata={"grid": spectra.provenance.get("grid"),
                                                              "classes": list(model.classes_)})
    out = tmp_path / "out"
    status = main(["explain", "--model", str(path), str(SPECTRA), "--out", str(out), "--max-figures", "1",
                   "--format", "pdf", "--dpi", "40"])
    assert status in (0, 1), capsys.readouterr().err
    (pdf,) = (out / "figures" / "saliency").glob("*.pdf")
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.with_suffix(".png").is_file()
    assert (out / "figures" / "gallery.pdf").read_bytes().startswith(b"%PDF")


def test_cli_rejects_a_bad_format(capsys):
    assert main(["explain", "x.fits", "--out", "o", "--format", "jpg"]) == 2
    assert "invalid choice: 'jpg'" in capsys.readouterr().err
    assert main(["explain", "x.fits", "--out", "o", "--dpi", "0"]) == 2
    assert "from 10 to 1200" in capsys.readouterr().err


def test_a_gallery_of_many_inputs_says_which_were_picked_and_why(model_and_spectra, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    import agnlens.plot.saliency_gallery as gallery

    seen = {}

    def spy(sal, indices, **kwargs):  # records what would be drawn; draws nothing
        seen.update(kwargs, indices=list(indices), sal=sal)
        return Figure()

    monkeypatch.setattr(gallery, "plot_gallery", spy)
    model, _ = model_and_spectra
    many = simulate_set(counts={"type1": 12, "type2": 12, "intermediate": 12}, seed=4)
    explain(model, many, tmp_path, max_figures=1, dpi=20)
    sal, reasons = seen["sal"], np.asarray(seen["reasons"])
    assert len(seen["indices"]) == 30 < len(many) == seen["n_maps"]  # the scale is that of every map
    wrong = sal.misclassified[seen["indices"]]
    assert list(reasons[wrong]) == ["catalogue disagrees"] * int(wrong.sum())
    assert set(reasons[~wrong]) == {"random pick of the inputs"}
    assert seen["title"].endswith(f"{30 - int(wrong.sum())} of {len(many) - int(sal.misclassified.sum())} "
                                  "input spectra at random")
