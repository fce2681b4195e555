"""Exact saliency gradients against central finite differences of the model's own predict_proba."""

import numpy as np
import pytest
from sklearn.datasets import make_classification

from agnlens.explain import decision_gradient, proba_gradient, verify
from agnlens.explain.gradient import finite_difference_gradient


def _model(kernel, n_classes, standardize, d=40, seed=0):
    from agnlens.models import SpectrumSVC

    X, y = make_classification(
        160, d, n_informative=10, n_classes=n_classes, n_clusters_per_class=1, random_state=seed
    )
    return SpectrumSVC(kernel=kernel, C=1.0, standardize=standardize, random_state=0).fit(X, y), X, y


@pytest.mark.parametrize("kernel", ["linear", "rbf", "poly"])
@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("standardize", [False, True])
def test_proba_gradient_matches_finite_differences(kernel, n_classes, standardize):
    model, X, _ = _model(kernel, n_classes, standardize)
    rows = X[:8]
    for target in (None, 0, n_classes - 1):
        result = verify(model, rows, target)
        # finite differences carry ~1e-11 absolute noise; nearly saturated maps are tiny
        assert result["max_rel_error"] < 1e-4, result
        assert result["mean_rel_error"] < 1e-6, result
    # per-row targets, every class once
    t = np.arange(8) % n_classes
    g = proba_gradient(model, rows, t, chunk_size=3)
    fd = finite_difference_gradient(model, rows, t)
    scale = np.abs(fd).max(axis=1, keepdims=True)
    assert np.max(np.abs(g - fd) / scale) < 1e-4


@pytest.mark.parametrize("kernel", ["rbf", "poly"])
@pytest.mark.parametrize("standardize", [False, True])
def test_decision_gradient_matches_finite_differences(kernel, standardize):
    model, X, _ = _model(kernel, 3, standardize)
    rows = X[:4]
    g = decision_gradient(model, rows, chunk_size=3)
    assert g.shape == (4, 3, X.shape[1])
    eps = 1e-5 * (model.scaler_.scale_ if standardize else np.sqrt(np.mean(X**2)))
    eps = np.broadcast_to(eps, (X.shape[1],))
    for i in range(4):
        steps = np.diag(eps)
        fd = (model.pairwise_decision_function(rows[i] + steps) - model.pairwise_decision_function(rows[i] - steps)) / (
            2 * eps[:, None]
        )
        np.testing.assert_allclose(g[i], fd.T, atol=1e-6 * np.abs(fd).max())


@pytest.mark.parametrize("n_classes", [2, 3])
def test_linear_decision_gradient_is_weight_vector(n_classes):
    from sklearn.svm import SVC

    model, X, y = _model("linear", n_classes, False)
    g = decision_gradient(model, X[:5])
    ref = SVC(kernel="linear", decision_function_shape="ovo").fit(X, y)
    for i in range(5):
        np.testing.assert_allclose(g[i], ref.coef_, rtol=1e-8, atol=1e-10 * np.abs(ref.coef_).max())


def test_gradient_shape_and_chunking_invariance():
    model, X, _ = _model("rbf", 3, True)
    a = proba_gradient(model, X, chunk_size=7)
    b = proba_gradient(model, X, chunk_size=1000)
    assert a.shape == X.shape
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_target_by_label_equals_target_by_index():
    from agnlens.models import SpectrumSVC

    X, y = make_classification(120, 30, n_informative=8, n_classes=3, n_clusters_per_class=1, random_state=2)
    labels = np.array(["type1", "type2", "intermediate"])[y]
    model = SpectrumSVC(kernel="rbf", random_state=0).fit(X, labels)
    k = list(model.classes_).index("type2")
    np.testing.assert_array_equal(proba_gradient(model, X[:5], "type2"), proba_gradient(model, X[:5], k))
    # the gradients of all class probabilities sum to zero (probabilities sum to one)
    total = sum(proba_gradient(model, X[:5], c) for c in model.classes_)
    assert np.abs(total).max() < 1e-10 * np.abs(proba_gradient(model, X[:5])).max()
    with pytest.raises(ValueError, match="neither a class"):
        proba_gradient(model, X[:5], "type3")
    with pytest.raises(ValueError, match="per-row target"):
        proba_gradient(model, X[:5], np.array([0, 1]))
    with pytest.raises(TypeError, match="SpectrumSVC"):
        proba_gradient(object(), X[:5])


@pytest.mark.parametrize("kernel", ["linear", "rbf", "poly"])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_one_pass_probability_and_gradient_equal_the_separate_calls(kernel, n_classes):
    from agnlens.explain.gradient import proba_and_gradient

    model, X, _ = _model(kernel, n_classes, kernel == "rbf")
    proba, g = proba_and_gradient(model, X)
    np.testing.assert_array_equal(proba, model.predict_proba(X))  # same blocks: the very same numbers
    np.testing.assert_allclose(proba_and_gradient(model, X, chunk_size=50)[0], proba, rtol=0, atol=1e-14)
    np.testing.assert_array_equal(np.argmax(proba, axis=1), np.searchsorted(model.classes_, model.predict(X)))
    np.testing.assert_allclose(g, proba_gradient(model, X, np.argmax(proba, axis=1)), rtol=1e-12, atol=1e-15)
