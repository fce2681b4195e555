"""``explain`` of files batch by batch (:class:`agnlens.stages.explain_batches.BatchExplanation`)
against the same spectra explained in memory (:func:`agnlens.stages.explanations.explain_set`, the
independent reference: it holds every map and computes each table from them at once); and the
pieces that let it hold no map: the saliency folder written chunk by chunk, the colour limit taken
from maps read chunk by chunk."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agnlens.explain.result import Saliency, SaliencyWriter, saved_rows
from agnlens.models.svm import SpectrumSVC
from agnlens.plot.saliency import shared_limit
from agnlens.simulate import simulate, simulate_set


@pytest.fixture(scope="module")
def balmer_model():
    train = simulate_set(counts={"type1": 30, "type2": 40, "intermediate": 30}, seed=11, grid="balmer")
    model = SpectrumSVC(kernel="rbf", C=3.0, gamma="scale", class_weight="balanced", random_state=0)
    return model.fit(np.asarray(train.flux, float), train.labels), train.provenance.get("grid")


def _frame(path):
    return pd.read_csv(path, dtype={"spec_id": str}, keep_default_na=False)


def _same_table(a: pd.DataFrame, b: pd.DataFrame, rtol: float, atol: float = 0.0) -> None:
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    for col in a.columns:
        if pd.api.types.is_numeric_dtype(a[col]) and pd.api.types.is_numeric_dtype(b[col]):
            np.testing.assert_allclose(a[col].to_numpy(float), b[col].to_numpy(float), rtol=rtol, atol=atol,
                                       equal_nan=True, err_msg=col)
        else:
            assert (a[col].astype(str) == b[col].astype(str)).all(), col


def test_files_explained_batch_by_batch_give_what_the_spectra_in_memory_give(balmer_model, tmp_path, monkeypatch):
    from agnlens.io.sdss_write import write_sdss_many
    from agnlens.stages import explain, read_inputs
    from agnlens.stages.explanations import explain_set

    model, grid = balmer_model
    files = tmp_path / "fits"
    write_sdss_many(simulate(counts={"type1": 4, "type2": 3, "intermediate": 3}, seed=5, grid="balmer"), files)
    spectra, rejected = read_inputs([files], grid="balmer")
    assert len(spectra) == 10 and not rejected
    reference = explain_set(model, spectra, tmp_path / "memory", max_figures=4)
    monkeypatch.setattr("agnlens.stages.executor.CHUNK", 3)  # 10 spectra in 4 batches of at most 3
    monkeypatch.setattr("agnlens.stages.explain_batches.DESCRIBED", 2)  # the first 4 (with a figure) kept
    done = explain([(model, {"grid": grid})], [files], tmp_path / "batches", max_figures=4)
    (streamed,) = done.explanations
    assert isinstance(streamed.saliency.values, np.memmap) and streamed.spectra is None  # no map held

    mem, bat = tmp_path / "memory", tmp_path / "batches"
    _same_table(_frame(mem / "predictions.csv"), _frame(bat / "predictions.csv"), rtol=0)
    a, b = Saliency.load(mem / "saliency"), Saliency.load(bat / "saliency")
    np.testing.assert_array_equal(a.flux, b.flux)
    np.testing.assert_allclose(b.values, a.values, rtol=1e-6, atol=1e-6 * np.abs(a.values).max())
    # (completeness is round-off, ~1e-15: the maps were computed in chunks of another size)
    _same_table(_frame(mem / "saliency" / "index.csv"), _frame(bat / "saliency" / "index.csv"), rtol=1e-12, atol=1e-12)
    # tables reduced batch by batch: the same numbers as from all maps at once, to summation order
    for name in ("line_table.csv", "centre_wings.csv", "line_contributions.csv"):
        _same_table(_frame(mem / name), _frame(bat / name), rtol=1e-6)
    assert len(_frame(bat / "centre_wings.csv")) > 0
    # one colour scale over every map (read back from the folder chunk by chunk), the same figures
    assert streamed.colour_limit == pytest.approx(reference.limit, rel=1e-6)
    figures = sorted(p.name for p in (mem / "figures" / "saliency").iterdir())
    assert figures == sorted(p.name for p in (bat / "figures" / "saliency").iterdir()) and len(figures) == 4
    assert (bat / "figures" / "gallery.png").is_file() and (bat / "figures" / "centre_wings.png").is_file()
    assert not [p.name for p in bat.iterdir() if p.name.startswith(".")]  # no working file left
    # words for the first spectra, the exact gradient checked at the saved spectra
    assert len(set(streamed.contributions["spec_id"])) == 4
    for i in (0, 7):  # kept in memory, and read back from line_contributions.csv
        assert streamed.describe(i) == reference.describe(i) != ""
    checks = streamed.verify(3)
    assert len(checks) == 3 and (checks["max_rel_error"] < 1e-3).all()


def test_saliency_written_chunk_by_chunk_is_the_saved_saliency(tmp_path):
    rng = np.random.default_rng(3)
    n, n_pix = 11, 40
    sal = Saliency(rng.normal(size=(n, n_pix)), np.linspace(4000.0, 5000.0, n_pix), rng.normal(size=(n, n_pix)),
                   rng.integers(0, 3, n), rng.dirichlet(np.ones(3), n), ["type1", "type2", "intermediate"],
                   "gradient", spec_id=[f"s{i}" for i in range(n)], reason=["input"] * n)
    sal.save(tmp_path / "whole")
    with SaliencyWriter(tmp_path) as writer:
        for start in range(0, n, 4):
            writer.add(sal[start:start + 4])
        writer.close(tmp_path / "chunks")
    whole, chunks = Saliency.load(tmp_path / "whole"), Saliency.load(tmp_path / "chunks", mmap=True)
    assert isinstance(chunks.values, np.memmap)
    np.testing.assert_array_equal(whole.values, chunks.values)
    np.testing.assert_array_equal(whole.flux, chunks.flux)
    pd.testing.assert_frame_equal(whole.to_frame(), chunks.to_frame())
    assert (tmp_path / "whole" / "saliency.json").read_text() == (tmp_path / "chunks" / "saliency.json").read_text()
    np.testing.assert_array_equal(np.concatenate(list(saved_rows(tmp_path / "chunks" / "values.npy", 3))),
                                  np.load(tmp_path / "whole" / "values.npy"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chunks", "whole"]  # the working folder is gone
    with pytest.raises(ValueError, match="not of the method"), SaliencyWriter(tmp_path) as writer:
        writer.add(sal)
        writer.add(Saliency(sal.values, sal.wavelength, sal.flux, sal.target_index, sal.probabilities, sal.classes,
                            "occlusion"))


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (50, 2000)])
def test_colour_limit_of_chunks_is_numpys_percentile(shape):
    rng = np.random.default_rng(shape[0])
    values = rng.standard_t(2, size=shape)
    values.flat[::17] = np.nan
    finite = np.abs(values[np.isfinite(values)])
    expected = float(np.percentile(finite, 99.5)) if finite.size else 1.0
    assert shared_limit(values) == pytest.approx(expected, rel=1e-15)
    assert shared_limit(lambda: (values[i:i + 2] for i in range(0, len(values), 2))) == pytest.approx(expected,
                                                                                                      rel=1e-15)
    assert shared_limit(np.zeros(shape)) == 1.0


@pytest.mark.parametrize("bad", [{"max_figures": -1}, {"max_figures": 2.5}, {"max_figures": True},
                                 {"figure_format": "jpg"}, {"dpi": 5}])
def test_figure_options_of_files_are_checked_before_any_work(balmer_model, tmp_path, bad):
    from agnlens.stages import explain

    from realdata import SPECTRA

    model, grid = balmer_model
    with pytest.raises(ValueError):
        explain([(model, {"grid": grid})], [SPECTRA], tmp_path / "out", **bad)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
