"""t-SNE maps (agnlens.embed) and their figures (agnlens.plot.embedding, agnlens.plot.metrics)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agnlens.embed import Embedding, resolve_method, tsne

CLASSES = np.array(["type1", "type2", "intermediate"])


def _clusters(n: int = 240, n_features: int = 60, seed: int = 0):
    """Three Gaussian clusters with some overlap between 'intermediate' and 'type2'."""
    rng = np.random.default_rng(seed)
    y = CLASSES[rng.integers(0, 3, n)]
    centres = {"type1": 3.0, "type2": -3.0, "intermediate": -1.0}
    direction = rng.normal(size=n_features)
    direction /= np.linalg.norm(direction)
    X = rng.normal(size=(n, n_features)) + np.array([centres[c] for c in y])[:, None] * direction * 3
    return X, y


@pytest.fixture(scope="module")
def data():
    return _clusters()


@pytest.fixture(scope="module")
def emb(data) -> Embedding:
    return tsne(data[0], perplexity=20, seed=3)


def test_same_seed_bitwise_identical_other_seed_differs(data, emb):
    X, _ = data
    again = tsne(X, perplexity=20, seed=3)
    assert again.coords.dtype == np.float64 and again.coords.shape == (240, 2)
    assert np.array_equal(again.coords, emb.coords)
    assert emb.n_jobs == -1  # all cores by default: the map does not depend on the thread count
    # another seed gives another map; two threads are bitwise reproducible too
    assert not np.array_equal(tsne(X[:80], perplexity=10, seed=5).coords, tsne(X[:80], perplexity=10, seed=6).coords)
    a = tsne(X[:60], perplexity=5, seed=4, n_jobs=2)
    assert a.n_jobs == 2
    assert np.array_equal(a.coords, tsne(X[:60], perplexity=5, seed=4, n_jobs=2).coords)


def test_map_does_not_depend_on_the_thread_count():
    # the neighbours are exact above openTSNE's own limit of 1,000 points too (not its Annoy index,
    # which is built differently on more threads), so threads change the speed only (FFT maps too:
    # checked on 15,000 spectra, too slow for a test)
    X, _ = _clusters(1200, 20, seed=1)
    one = tsne(X, perplexity=10, pca_components=None, seed=2, n_jobs=1)
    assert type(one._tsne.affinities.knn_index).__name__ == "Sklearn"  # openTSNE's exact search
    assert np.array_equal(one.coords, tsne(X, perplexity=10, pca_components=None, seed=2, n_jobs=2).coords)


def test_resolved_settings(data, emb):
    assert emb.method == "bh" and emb.method_name == "openTSNE Barnes-Hut"
    assert emb.n_pca == 50 and emb.n == 240 and emb.perplexity == 20 and emb.fit_s > 0
    small = tsne(data[0][:60, :20], perplexity=5, pca_components=None, seed=0)
    assert small.n_pca is None and small.method == "bh"
    assert np.all(np.isfinite(small.coords))
    assert resolve_method("auto", 3346) == "bh" and resolve_method("auto", 20_000) == "fft"
    assert resolve_method("fft", 10) == "fft"


def test_knn_accuracy_matches_brute_force(data, emb):
    _, y = data
    for k in (1, 5, 10):
        # brute force: full distance matrix, self excluded, majority vote, tie -> first label in sorted order
        d = np.linalg.norm(emb.coords[:, None, :] - emb.coords[None, :, :], axis=2)
        np.fill_diagonal(d, np.inf)
        classes = np.unique(y)
        hits = 0
        for i in range(len(y)):
            nb = np.argsort(d[i], kind="stable")[:k]
            votes = [(y[nb] == c).sum() for c in classes]
            hits += classes[int(np.argmax(votes))] == y[i]
        assert emb.knn_accuracy(y, k=k) == pytest.approx(hits / len(y), abs=1e-12)
    # quality gate: separated clusters stay separated in the map
    assert emb.knn_accuracy(y) >= 0.9


def test_trustworthiness_is_sklearns(data, emb):
    from sklearn.manifold import trustworthiness

    X, _ = data
    t = emb.trustworthiness(X, k=7)
    assert t == pytest.approx(trustworthiness(X, emb.coords, n_neighbors=7))
    assert 0.8 < t <= 1.0
    shuffled = emb.coords[np.random.default_rng(0).permutation(len(X))]
    assert trustworthiness(X, shuffled, n_neighbors=7) < t - 0.2


def test_transform_places_near_duplicates_next_to_their_originals(data, emb):
    X, _ = data
    before = emb.coords.copy()
    rng = np.random.default_rng(1)
    idx = rng.choice(len(X), size=12, replace=False)
    noisy = X[idx] + 1e-3 * rng.normal(size=(len(idx), X.shape[1]))
    placed = emb.transform(noisy)
    assert placed.shape == (12, 2)
    d = np.linalg.norm(emb.coords[None, :, :] - placed[:, None, :], axis=2)
    ranks = np.array([int(np.nonzero(np.argsort(d[i]) == j)[0][0]) for i, j in enumerate(idx)])
    # the original is (nearly always) the map point nearest to its near-duplicate, closer than the
    # map's typical nearest-neighbour spacing (openTSNE re-centres its reference map: checked here)
    assert np.mean(ranks == 0) >= 0.75 and ranks.max() < 3, ranks
    nn = np.sort(np.linalg.norm(emb.coords[:, None] - emb.coords[None], axis=2), axis=1)[:, 1]
    assert np.median(d[np.arange(12), idx]) < np.median(nn)
    # the fitted map does not move, and a second call places into the same frame
    assert np.array_equal(emb.coords, before)
    assert np.allclose(emb.transform(noisy), placed, atol=0.05)


def test_simulated_spectra_map_matches_sklearn_tsne():
    """On simulated spectra the map separates the classes as well as scikit-learn's t-SNE does."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    from agnlens.simulate import simulate_set

    s = simulate_set(240, seed=2)
    y = s.meta["label"].to_numpy()
    e = tsne(s.flux, perplexity=20, seed=0)
    # reference: scikit-learn's Barnes-Hut t-SNE on the same 50 PCA components
    Z = PCA(50, random_state=0).fit_transform(s.flux)
    ref = TSNE(perplexity=20, init="pca", random_state=0).fit_transform(Z)
    ref_knn = Embedding(coords=ref, perplexity=30, method="bh", seed=0, n_jobs=1, n_pca=50, fit_s=0.0).knn_accuracy(y)
    chance = max(np.mean(y == c) for c in np.unique(y))
    assert abs(e.knn_accuracy(y) - ref_knn) <= 0.06, (e.knn_accuracy(y), ref_knn)
    assert e.knn_accuracy(y) > chance
    assert e.trustworthiness(s.flux, k=10) > 0.9


def test_errors_name_the_problem(data, emb):
    X, y = data
    with pytest.raises(ValueError, match=r"2-D .*x\[None, :\]"):
        tsne(X[0])
    bad = X.copy()
    bad[4, 2] = np.nan
    with pytest.raises(ValueError, match="non-finite values in 1 spectra"):
        tsne(bad)
    with pytest.raises(ValueError, match=r"perplexity must be .* below \(n_spectra - 1\) / 3"):
        tsne(X[:40], perplexity=50)
    with pytest.raises(ValueError, match="method must be"):
        tsne(X, method="exact")
    with pytest.raises(ValueError, match="n_components"):
        tsne(X, n_components=3)
    with pytest.raises(ValueError, match="n_jobs must be"):
        tsne(X, n_jobs=0)
    with pytest.raises(ValueError, match="fitted on spectra with 60 pixels, got 59"):
        emb.transform(X[:3, :59])
    with pytest.raises(ValueError, match=r"labels must have shape \(240,\)"):
        emb.knn_accuracy(y[:10])
    with pytest.raises(ValueError, match="k must be"):
        emb.knn_accuracy(y, k=0)
    with pytest.raises(TypeError, match="numeric array"):
        tsne([["a", "b"], ["c", "d"]])


def test_plot_embedding_marks_and_labels(data, emb):
    from matplotlib.collections import PathCollection

    _, y = data
    mis = np.zeros(len(y), bool)
    mis[[1, 2, 3]] = True
    expl = np.zeros(len(y), bool)
    expl[[1, 10]] = True
    labels = y.astype(object)
    labels[0] = "unknown"
    ax = emb.plot(labels, misclassified=mis, explained=expl, simulated=True)
    assert ax.get_xlabel() == "t-SNE 1" and ax.get_ylabel() == "t-SNE 2"
    assert "simulated" in ax.get_title()
    offsets = {c.get_label(): c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)}
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("misclassified (3)") for t in texts)
    assert any(t.startswith("saliency map (2)") for t in texts)
    assert any(t.startswith("other (1)") for t in texts)
    assert np.allclose(offsets["misclassified (3)"], emb.coords[[1, 2, 3]])
    n_int = int((labels == "intermediate").sum())
    assert np.allclose(offsets[f"intermediate ({n_int})"], emb.coords[labels == "intermediate"])
    # the intermediates are drawn after (above) type 1 and type 2
    order = [c.get_label().split(" (")[0] for c in ax.collections]
    assert order.index("intermediate") > max(order.index("type 1"), order.index("type 2"))

    # misclassified from predicted labels when not given; CSV strings accepted as booleans
    from agnlens.plot.embedding import plot_embedding

    pred = y.copy()
    pred[[5, 6]] = np.where(y[[5, 6]] == "type1", "type2", "type1")
    ax = plot_embedding(emb.coords, y, predicted=pred, explained=np.where(expl, "True", "False"))
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "misclassified (2)" in texts and "saliency map (2)" in texts
    assert "simulated" not in ax.get_title()
    with pytest.raises(ValueError, match=r"coords must have shape \(n_spectra, 2\)"):
        plot_embedding(emb.coords[:, :1], y)


def test_plot_confusion_counts_and_row_shares():
    from agnlens.plot.metrics import plot_confusion

    m = np.array([[50, 2, 3], [1, 180, 19], [0, 11, 34]])
    ax = plot_confusion(m, ["type1", "type2", "intermediate"], title="multiclass")
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 9
    assert "180\n90.0%" in texts and "11\n24.4%" in texts and "0\n0.0%" in texts
    image = ax.images[0].get_array()
    assert np.allclose(image, m / m.sum(axis=1, keepdims=True))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["type 1", "type 2", "intermediate"]
    with pytest.raises(ValueError, match=r"square .*3×3"):
        plot_confusion(m[:2], ["type1", "type2", "intermediate"])


def test_plot_tuning_lines_and_best():
    from agnlens.plot.metrics import plot_tuning

    rows = []
    for kernel, gammas in (("linear", [None]), ("rbf", [0.01, 0.1])):
        for g in gammas:
            for C in (0.01, 0.1, 1.0, 10.0):
                rows.append({"kernel": kernel, "C": C, "gamma": g, "class_weight": "balanced",
                             "validation_f1": 0.5 + 0.1 * np.log10(C * 100) * (g or 1), "best": False})
    table = pd.DataFrame(rows)
    table.loc[table["validation_f1"].idxmax(), "best"] = True
    ax = plot_tuning(table, title="multiclass")
    assert len(ax.lines) == 3
    assert ax.get_xscale() == "log" and "F1" in ax.get_ylabel()
    star = [c for c in ax.collections if c.get_label() == "selected"][0]
    best = table[table["best"]]
    assert np.allclose(star.get_offsets(), best[["C", "validation_f1"]].to_numpy())
    with pytest.raises(ValueError, match="lacks the columns"):
        plot_tuning(table.drop(columns="C"))


def test_saved_map_places_new_spectra_as_the_fitted_one(data, emb, tmp_path):
    """A map read back from its .npz (plain arrays, no pickle) places new spectra exactly where the
    map in memory does, and keeps the extra arrays given to save."""
    from agnlens.embed import load_embedding

    X, y = data
    path = tmp_path / "map.npz"
    emb.save(path, labels=y)
    new = _clusters(12, seed=7)[0]
    loaded, extra = load_embedding(path)
    np.testing.assert_array_equal(loaded.coords, emb.coords)
    np.testing.assert_array_equal(extra["labels"], y)
    np.testing.assert_allclose(loaded.transform(new), emb.transform(new), rtol=0, atol=1e-9)
    assert (loaded.perplexity, loaded.method, loaded.seed, loaded.n_pca) == (emb.perplexity, emb.method, emb.seed,
                                                                             emb.n_pca)
    np.savez(tmp_path / "other.npz", coords=emb.coords)
    with pytest.raises(ValueError, match="not a saved t-SNE map"):
        load_embedding(tmp_path / "other.npz")
