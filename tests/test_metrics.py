"""Scores against sklearn.metrics; bootstrap intervals against a plain loop."""

import time

import numpy as np
import pytest
from sklearn import metrics as skm

from agnlens.models.metrics import evaluate

CLASSES = ["type1", "type2", "intermediate"]


def _fake(n=670, k=3, seed=0, accuracy=0.85):
    rng = np.random.default_rng(seed)
    classes = CLASSES[:k]
    t = rng.integers(0, k, n)
    p = np.where(rng.random(n) < accuracy, t, rng.integers(0, k, n))
    logits = rng.normal(size=(n, k)) + 2.0 * np.eye(k)[p]
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return np.array(classes)[t], np.array(classes)[p], proba, classes


@pytest.mark.parametrize("k", [2, 3])
def test_scores_equal_sklearn(k):
    y, yp, proba, classes = _fake(k=k)
    m = evaluate(y, yp, proba, classes, n_boot=0)
    assert m["f1"] == pytest.approx(skm.f1_score(y, yp, labels=classes, average="macro"))
    assert m["precision"] == pytest.approx(skm.precision_score(y, yp, labels=classes, average="macro"))
    assert m["recall"] == pytest.approx(skm.recall_score(y, yp, labels=classes, average="macro"))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, yp))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, yp))
    assert m["confusion_matrix"] == skm.confusion_matrix(y, yp, labels=classes).tolist()
    if k == 2:
        ref_auc = skm.roc_auc_score(y == classes[1], proba[:, 1])
    else:
        order = np.argsort(classes)  # sklearn wants sorted labels and matching columns
        ref_auc = skm.roc_auc_score(y, proba[:, order], multi_class="ovr", average="macro", labels=sorted(classes))
    assert m["roc_auc"] == pytest.approx(ref_auc)
    per = skm.precision_recall_fscore_support(y, yp, labels=classes)
    for i, c in enumerate(classes):
        assert m["per_class"][c]["precision"] == pytest.approx(per[0][i])
        assert m["per_class"][c]["recall"] == pytest.approx(per[1][i])
        assert m["per_class"][c]["f1"] == pytest.approx(per[2][i])
        assert m["per_class"][c]["support"] == per[3][i]
    assert "f1_ci95" not in m


def test_never_predicted_class_scores_zero_like_sklearn():
    y = np.array(["type1", "type2", "intermediate", "type2"])
    yp = np.array(["type1", "type2", "type2", "type2"])
    m = evaluate(y, yp, None, CLASSES, n_boot=0)
    assert m["precision"] == pytest.approx(skm.precision_score(y, yp, labels=CLASSES, average="macro", zero_division=0))
    assert m["f1"] == pytest.approx(skm.f1_score(y, yp, labels=CLASSES, average="macro", zero_division=0))
    assert m["roc_auc"] is None


def test_bootstrap_equals_loop_and_is_fast():
    y, yp, proba, classes = _fake()
    t0 = time.perf_counter()
    m = evaluate(y, yp, proba, classes, n_boot=1000, seed=3)
    elapsed = time.perf_counter() - t0
    rng = np.random.default_rng(3)
    rows = rng.integers(0, y.size, size=(1000, y.size))
    f1 = [skm.f1_score(y[r], yp[r], labels=classes, average="macro", zero_division=0) for r in rows[:50]]
    acc = [np.mean(y[r] == yp[r]) for r in rows]  # brute-force loop
    assert m["accuracy_ci95"] == pytest.approx(list(np.percentile(acc, [2.5, 97.5])))
    # the first 50 resamples checked one by one against sklearn
    from agnlens.models.metrics import _confusions, _scores

    index = {c: i for i, c in enumerate(classes)}
    t = np.array([index[v] for v in y])
    p = np.array([index[v] for v in yp])
    np.testing.assert_allclose(_scores(_confusions(t, p, 3, rows[:50]))["f1"], f1)
    lo, hi = m["f1_ci95"]
    assert lo < m["f1"] < hi
    assert elapsed < 5.0  # generous; typically ~0.05 s (not a benchmark)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="not in classes"):
        evaluate(["type1", "type3"], ["type1", "type1"], None, CLASSES)
    with pytest.raises(ValueError, match="proba must have shape"):
        evaluate(["type1", "type2"], ["type1", "type1"], np.ones((2, 2)), CLASSES)
    with pytest.raises(ValueError, match="one length"):
        evaluate(["type1"], ["type1", "type2"], None, CLASSES)
