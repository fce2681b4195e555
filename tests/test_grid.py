"""The one Grid type: exact dict round trip, real equality, agnlens 0.2 records, and a spectrum's walk
from file to store keeping its grid (the stored flux is the file preprocessed directly, to the bit)."""

from __future__ import annotations

import functools
import json

import numpy as np
import pandas as pd
import pytest
import zarr
from sklearn.datasets import make_classification

from agnlens.errors import ModelFileError, ReadError
from agnlens.grid import Grid, balmer_grid, get_grid, grid_for, paper_grid
from agnlens.io import read_catalog, read_spectrum
from agnlens.io.store import append_store, open_store, read_rows, store_info, write_store
from agnlens.models import SpectrumSVC
from agnlens.models.persistence import check_grid, grid_from_metadata, load_model, save_model
from agnlens.preprocess import preprocess_one
from agnlens.spectra import Spectrum, SpectrumSet
from agnlens.stages.reading import read_files as ingest

from realdata import LABELS, SPECTRA

LOG_CUSTOM = Grid("mine", 10.0 ** np.arange(np.log10(4500.0), np.log10(5500.0), 2e-4), (5000.0, 5100.0), "log")
NO_WINDOW = Grid("bare", np.linspace(1.0, 2.0, 7), None)


@pytest.mark.parametrize("grid", [paper_grid(), balmer_grid(), LOG_CUSTOM, NO_WINDOW], ids=lambda g: g.name)
def test_dict_round_trip_is_exact_through_json(grid):
    back = Grid.from_dict(json.loads(json.dumps(grid.to_dict(), allow_nan=False)))
    assert back == grid and hash(back) == hash(grid)
    assert back.wavelength.tobytes() == grid.wavelength.tobytes()  # to the bit
    assert (back.name, back.spacing, back.norm_window) == (grid.name, grid.spacing, grid.norm_window)


def test_equality_sees_one_wavelength_the_spacing_and_the_window():
    wl = paper_grid().wavelength.copy()
    wl[500] = np.nextafter(wl[500], np.inf)  # one pixel, one ulp
    one_pixel = Grid("paper", wl, spacing="linear")
    other_spacing = Grid("paper", paper_grid().wavelength, spacing="custom")
    other_window = Grid("paper", paper_grid().wavelength, (5000.0, 5100.0), "linear")
    for other in (one_pixel, other_spacing, other_window):
        assert other != paper_grid()
    # the v0.2 check (pixel count and end points) could not tell the shifted pixel
    assert one_pixel.n_pixels == paper_grid().n_pixels and one_pixel.wavelength[[0, -1]].tolist() == [3729.0, 5266.0]
    # the name is a label: the same wavelengths, spacing and window are the same grid
    renamed = Grid("renamed", paper_grid().wavelength, spacing="linear")
    assert renamed == paper_grid() and hash(renamed) == hash(paper_grid())
    assert len({paper_grid(), get_grid("paper"), renamed, one_pixel, other_spacing, other_window}) == 4
    assert paper_grid() != "paper" and balmer_grid() != paper_grid()


def test_grid_refuses_what_it_cannot_be():
    with pytest.raises(ValueError, match="strictly increasing"):
        Grid("x", [1.0, 3.0, 2.0])
    with pytest.raises(ValueError, match="not evenly spaced in λ"):
        Grid("x", [4000.0, 5000.0, 5200.0, 6000.0], spacing="linear")
    with pytest.raises(ValueError, match="outside the grid"):
        Grid("x", np.linspace(4000.0, 5000.0, 10))
    with pytest.raises(ValueError, match="edited or damaged"):
        Grid.from_dict({**paper_grid().to_dict(), "hi": 5300.0})
    assert not paper_grid().wavelength.flags.writeable  # frozen: the hash cannot go stale


def _v02_summary(grid: Grid) -> dict:
    """A grid as agnlens 0.2 recorded it: the summary, no wavelengths."""
    return {k: v for k, v in grid.to_dict().items() if k != "wavelength"}


def test_v02_model_files_still_load_and_check(tmp_path):
    X, y = make_classification(60, 20, n_informative=8, n_classes=3, n_clusters_per_class=1, random_state=0)
    y = np.array(["type1", "type2", "intermediate"])[y]
    model = SpectrumSVC(kernel="linear", random_state=0).fit(X, y)
    old = save_model(model, tmp_path / "old.skops", metadata={"grid": _v02_summary(paper_grid())})
    new = save_model(model, tmp_path / "new.skops", metadata={"grid": paper_grid().to_dict()})
    flat = np.ones((2, 1000))
    on_paper = SpectrumSet(paper_grid().wavelength, flat, flat, flat == 0, pd.DataFrame({"spec_id": ["a", "b"]}),
                           grid=paper_grid())
    for path in (old, new):
        loaded, meta = load_model(path)
        np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
        assert grid_from_metadata(meta) == paper_grid()
        check_grid(meta, on_paper)
        shifted = on_paper[[0]]
        shifted.wavelength = shifted.wavelength + 1e-9
        with pytest.raises(ModelFileError, match=r"trained on grid 'paper'.*--grid paper"):
            check_grid(meta, shifted)
    custom = _v02_summary(Grid("mine", np.geomspace(4000.0, 6000.0, 50), spacing="custom"))
    with pytest.raises(ModelFileError, match="cannot be rebuilt"):
        grid_from_metadata({"grid": custom})


@functools.cache
def _ingested(grid: str):
    spectra, summary = ingest([SPECTRA], labels=LABELS, grid=grid)
    assert len(spectra) >= 10 and isinstance(spectra.grid, Grid) and spectra.grid == get_grid(grid)
    return spectra, summary


@pytest.mark.parametrize("form", ["summary", "name"])
def test_v02_stores_still_load_and_take_appends(tmp_path, form):
    spectra, _ = _ingested("paper")
    path = write_store(spectra[:6], tmp_path / "old.zarr")
    group = zarr.open_group(str(path), mode="r+")
    attrs = dict(group.attrs["agnlens"])
    assert attrs["grid"] == "paper" and attrs["provenance"]["grid"] == paper_grid().to_dict()
    # rewrite the attributes as agnlens 0.2 wrote them: the grid a summary, or only its name
    attrs["provenance"] = {**attrs["provenance"], "grid": _v02_summary(paper_grid()) if form == "summary" else "paper"}
    group.attrs["agnlens"] = attrs
    opened = open_store(path, lazy=False)
    assert opened.grid == paper_grid() and opened.grid.name == "paper"
    assert read_rows(path, 0, 3).grid == paper_grid()
    assert store_info(path)["grid"] == paper_grid().describe()
    append_store(spectra[6:], path)
    assert len(open_store(path)) == len(spectra)


def test_a_store_whose_grid_record_disagrees_with_its_wavelengths_is_refused(tmp_path):
    spectra, _ = _ingested("paper")
    path = write_store(spectra[:3], tmp_path / "s.zarr")
    group = zarr.open_group(str(path), mode="r+")
    attrs = dict(group.attrs["agnlens"])
    attrs["provenance"] = {**attrs["provenance"], "grid": balmer_grid().to_dict()}
    group.attrs["agnlens"] = attrs
    with pytest.raises(ReadError, match="do not make one grid.*does not hold"):
        open_store(path)


def test_the_walk_from_file_to_store_keeps_the_grid_and_the_bits(tmp_path):
    spectra, summary = _ingested("balmer")
    stored = open_store(write_store(spectra, tmp_path / "s.zarr"), lazy=False)
    assert stored.grid == balmer_grid() and stored.provenance["grid"] == balmer_grid().to_dict()
    catalog = read_catalog(LABELS).set_index("spec_id")
    for i, source in enumerate(stored.meta["source"]):
        raw = read_spectrum(source)
        raw.meta["label"], raw.meta["z"] = catalog.loc[raw.spec_id, ["label", "z_override"]]  # as the catalogue says
        direct = preprocess_one(raw, balmer_grid())  # the file preprocessed directly
        assert isinstance(direct, Spectrum) and direct.grid == balmer_grid() and direct.frame == "rest"
        assert direct.wavelength is balmer_grid().wavelength
        assert stored.flux[i].tobytes() == direct.flux.astype(np.float32).tobytes()
        assert stored.ivar[i].tobytes() == direct.ivar.astype(np.float32).tobytes()
        np.testing.assert_array_equal(stored.mask[i], direct.mask)
        assert stored.meta["snr"].iloc[i] == direct.meta["snr"] and stored.labels[i] == direct.meta["label"]


def test_spectra_are_stacked_only_onto_their_own_grid():
    raw = read_spectrum(next(iter(sorted(SPECTRA.glob("spec-*.fits")))))
    on_paper, on_balmer = preprocess_one(raw, "paper"), preprocess_one(raw, "balmer")
    assert SpectrumSet.from_spectra([on_paper]).grid == paper_grid()
    assert len(SpectrumSet.from_spectra([], paper_grid())) == 0
    with pytest.raises(ValueError, match="preprocess every spectrum onto the set's grid"):
        SpectrumSet.from_spectra([on_paper, on_balmer])
    with pytest.raises(ValueError, match="preprocess every spectrum"):
        SpectrumSet.from_spectra([raw], paper_grid())  # its own pixels: no grid
    with pytest.raises(ValueError, match="no grid"):
        SpectrumSet.from_spectra([raw])
    with pytest.raises(ValueError, match="does not hold the spectra's wavelengths"):
        grid_for(balmer_grid().wavelength, paper_grid())
    with pytest.raises(ValueError, match="different grids"):
        SpectrumSet.concat([SpectrumSet.from_spectra([on_paper]), SpectrumSet.from_spectra([on_balmer])])
