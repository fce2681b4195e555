"""SpectrumSVC: reference tests against scikit-learn's SVC, invariants, estimator checks."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs, make_classification
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils.estimator_checks import parametrize_with_checks

from agnlens.models import SpectrumSVC
from agnlens.models.coupling import couple, fit_sigmoid


def _data(n_classes, n=240, d=60, seed=0):
    return make_classification(
        n, d, n_informative=12, n_redundant=4, n_classes=n_classes, n_clusters_per_class=1, random_state=seed
    )


@parametrize_with_checks([SpectrumSVC(), SpectrumSVC(kernel="rbf", standardize=True, random_state=0)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("kernel", ["linear", "rbf", "poly"])
@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("standardize", [False, True])
def test_decision_values_equal_sklearn(kernel, n_classes, standardize):
    X, y = _data(n_classes)
    model = SpectrumSVC(kernel=kernel, C=0.5, standardize=standardize, random_state=0).fit(X, y)
    Z = StandardScaler().fit_transform(X) if standardize else X
    ref = SVC(kernel=kernel, C=0.5, gamma="scale", decision_function_shape="ovo").fit(Z, y)
    expected = ref.decision_function(Z).reshape(len(X), -1)
    ours = model.pairwise_decision_function(X)
    np.testing.assert_allclose(ours, expected, rtol=1e-8, atol=1e-8 * np.abs(expected).max())
    # and rebuilt from the public support vectors / dual coefficients / intercepts, as sklearn's test_svm does
    if kernel == "linear":
        K = Z @ model.support_vectors_.T
    elif kernel == "rbf":
        d2 = ((Z[:, None, :] - model.support_vectors_[None]) ** 2).sum(-1)
        K = np.exp(-model.gamma_ * d2)
    else:
        K = (model.gamma_ * Z @ model.support_vectors_.T + model.coef0) ** model.degree
    # the gradient hook (scale, kernel_from_gram, linear_coef_) gives the same pieces
    np.testing.assert_allclose(model.scale(X), Z, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(model.kernel_from_gram(Z, Z @ model.support_vectors_.T), K, rtol=1e-10, atol=1e-12)
    if kernel == "linear":
        f = model.scale(X) @ model.linear_coef_.T + model.intercept_
        np.testing.assert_allclose(f, expected, rtol=1e-8, atol=1e-8 * np.abs(expected).max())
    else:
        assert model.linear_coef_ is None
    if n_classes == 2:
        rebuilt = K @ model.dual_coef_[0] + model.intercept_[0]
        np.testing.assert_allclose(rebuilt, expected[:, 0], rtol=1e-8, atol=1e-8 * np.abs(expected).max())
    else:
        starts = np.concatenate([[0], np.cumsum(model.n_support_)])
        for q, (i, j) in enumerate(model.pairs_):
            si, sj = slice(starts[i], starts[i + 1]), slice(starts[j], starts[j + 1])
            f = K[:, si] @ model.dual_coef_[j - 1, si] + K[:, sj] @ model.dual_coef_[i, sj] + model.intercept_[q]
            np.testing.assert_allclose(f, expected[:, q], rtol=1e-8, atol=1e-8 * np.abs(expected).max())
    assert model.gamma_ == pytest.approx(ref._gamma)
    np.testing.assert_array_equal(model.support_, ref.support_)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_probabilities_sum_to_one_and_argmax_is_predict(n_classes):
    X, y = _data(n_classes, n=3000, d=50, seed=1)
    model = SpectrumSVC(kernel="rbf", C=1.0, random_state=0).fit(X[:300], y[:300])
    p = model.predict_proba(X)
    assert p.shape == (3000, n_classes)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    assert p.min() >= 0.0 and p.max() <= 1.0
    np.testing.assert_array_equal(model.predict(X), model.classes_[np.argmax(p, axis=1)])
    # decision_function is consistent with predict, as scikit-learn's classifier contract wants
    dec = model.decision_function(X)
    if n_classes == 2:
        np.testing.assert_array_equal(model.classes_[(dec > 0).astype(int)], model.predict(X))
    else:
        np.testing.assert_array_equal(model.classes_[np.argmax(dec, axis=1)], model.predict(X))
    assert (model.predict(X[300:]) == y[300:]).mean() > 0.8


def test_binary_probability_is_platt_sigmoid_of_decision_value():
    X, y = _data(2)
    model = SpectrumSVC(kernel="rbf", random_state=0).fit(X, y)
    f = model.pairwise_decision_function(X)[:, 0]
    A, B = model.calibration_[0]
    np.testing.assert_allclose(model.predict_proba(X)[:, 1], 1.0 / (1.0 + np.exp(A * f + B)), rtol=1e-12)
    assert A < 0  # probability of classes_[1] grows with the decision value


def test_coupling_solves_wu_lin_weng_problem():
    """The linear-system solution equals a brute-force constrained minimisation and is non-negative."""
    from scipy.optimize import minimize

    rng = np.random.default_rng(0)
    pairs = np.array([(i, j) for i in range(4) for j in range(i + 1, 4)])
    r = rng.uniform(0.01, 0.99, size=(20, len(pairs)))
    p = couple(r, pairs, 4)
    for row in range(20):
        R = np.zeros((4, 4))
        for q, (i, j) in enumerate(pairs):
            R[i, j], R[j, i] = r[row, q], 1 - r[row, q]

        def obj(v, R=R):
            return sum((R[j, i] * v[i] - R[i, j] * v[j]) ** 2 for i in range(4) for j in range(4) if i != j)

        res = minimize(obj, np.full(4, 0.25), constraints=[{"type": "eq", "fun": lambda v: v.sum() - 1}],
                       bounds=[(0, 1)] * 4, method="SLSQP", options={"ftol": 1e-15, "maxiter": 500})
        np.testing.assert_allclose(p[row], res.x, atol=1e-6)
    assert p.min() >= 0 and np.allclose(p.sum(1), 1)


def test_fit_sigmoid_matches_bruteforce_logistic_fit():
    from scipy.optimize import minimize

    rng = np.random.default_rng(3)
    f = np.concatenate([rng.normal(1.5, 1.0, 80), rng.normal(-1.0, 1.0, 120)])
    pos = np.arange(200) < 80
    A, B = fit_sigmoid(f, pos)
    t = np.where(pos, 81 / 82, 1 / 122)

    def nll(ab):
        q = 1 / (1 + np.exp(ab[0] * f + ab[1]))
        return -np.sum(t * np.log(q) + (1 - t) * np.log(1 - q))

    ref = minimize(nll, [0.0, 0.0], method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 5000})
    np.testing.assert_allclose([A, B], ref.x, atol=1e-4)


def test_deterministic_given_random_state():
    X, y = _data(3)
    a = SpectrumSVC(kernel="rbf", random_state=7).fit(X, y).predict_proba(X)
    b = SpectrumSVC(kernel="rbf", random_state=7).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)


def test_string_labels_and_class_weight_dict():
    X, y = make_blobs(150, 20, centers=3, random_state=0)
    labels = np.array(["type1", "type2", "intermediate"])[y]
    model = SpectrumSVC(class_weight={"intermediate": 3.0}, random_state=0).fit(X, labels)
    assert list(model.classes_) == ["intermediate", "type1", "type2"]
    assert set(model.predict(X)) <= set(labels)
    with pytest.raises(ValueError, match="class_weight names classes"):
        SpectrumSVC(class_weight={"type3": 2.0}).fit(X, labels)


@pytest.mark.parametrize(
    "params, match",
    [({"kernel": "sigmoid"}, "kernel must be one of"), ({"C": -1.0}, "C must be a positive"),
     ({"gamma": "wide"}, "gamma must be"), ({"calibration_cv": 1}, "calibration_cv")],
)
def test_bad_parameters_are_named(params, match):
    X, y = _data(2)
    with pytest.raises(ValueError, match=match):
        SpectrumSVC(**params).fit(X, y)


def test_one_class_is_refused():
    X = np.random.default_rng(0).normal(size=(20, 5))
    with pytest.raises(ValueError, match="only one class"):
        SpectrumSVC().fit(X, np.zeros(20))
