"""Splits and the precomputed-kernel search: reference against plain SVC, invariants, quality gate."""

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.metrics import f1_score
from sklearn.svm import SVC

from agnlens.models.tuning import split, tune


def test_split_is_stratified_partition_and_seeded():
    labels = np.array(["type1"] * 680 + ["type2"] * 2145 + ["intermediate"] * 521)
    parts = split(labels, seed=0)
    allidx = np.concatenate(list(parts.values()))
    np.testing.assert_array_equal(np.sort(allidx), np.arange(labels.size))
    sizes = {k: len(v) for k, v in parts.items()}
    assert sizes == pytest.approx({"train": 2141, "validation": 535, "test": 670}, abs=2)
    for cls in np.unique(labels):
        n = (labels == cls).sum()
        for name, frac in zip(("train", "validation", "test"), (0.64, 0.16, 0.20)):
            assert abs((labels[parts[name]] == cls).sum() - frac * n) <= 1
    again = split(labels, seed=0)
    other = split(labels, seed=1)
    for name in parts:
        np.testing.assert_array_equal(parts[name], again[name])
    assert not np.array_equal(parts["test"], other["test"])


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.7, 0.2, 0.2), (0.8, 0.3, -0.1)])
def test_split_rejects_bad_fractions(fractions):
    with pytest.raises(ValueError, match="fractions"):
        split(np.array(["a", "b"] * 10), fractions=fractions)


def _problem(n_classes=3, seed=0):
    X, y = make_classification(
        400, 60, n_informative=12, n_classes=n_classes, n_clusters_per_class=1, class_sep=1.2, random_state=seed
    )
    return X, np.array(["type1", "type2", "intermediate"])[y]


def test_cells_equal_plain_svc_and_best_model_reproduces_its_score():
    X, y = _problem()
    parts = split(y, seed=0)
    X_poisoned = X.copy()
    X_poisoned[parts["test"]] = np.nan  # the test split must not be touched
    result = tune(X_poisoned, y, train_idx=parts["train"], val_idx=parts["validation"], kernels=("linear", "rbf"),
                  C=[0.1, 1.0, 10.0], class_weight=(None, "balanced"))
    table = result.table
    columns = {"kernel", "C", "gamma", "degree", "class_weight", "validation_f1", "validation_accuracy", "fit_s"}
    assert columns <= set(table)
    assert table["best"].sum() == 1
    Xtr, ytr, Xva, yva = X[parts["train"]], y[parts["train"]], X[parts["validation"]], y[parts["validation"]]
    # every cell's libsvm vote equals a from-scratch sklearn SVC on the raw features
    for row in table.sample(6, random_state=0).itertuples():
        gamma = row.gamma if row.kernel != "linear" else "scale"
        cw = row.class_weight if isinstance(row.class_weight, str) else None
        ref = SVC(kernel=row.kernel, C=row.C, gamma=gamma, class_weight=cw).fit(Xtr, ytr)
        assert row.vote_f1 == pytest.approx(f1_score(yva, ref.predict(Xva), average="macro"), abs=1e-9)
    # the table's best validation score is exactly the refitted model's own validation score
    best = table[table["best"]].iloc[0]
    model = result.best_estimator
    assert best["validation_f1"] == pytest.approx(f1_score(yva, model.predict(Xva), average="macro"), abs=1e-9)
    calibrated = table[table["scored_by"] == "calibrated"]
    assert len(calibrated) == 8 and best["scored_by"] == "calibrated"
    assert best["validation_f1"] == calibrated["validation_f1"].max()
    # the refined cells are the leading ones by the vote
    assert calibrated["vote_f1"].min() >= table.loc[table["scored_by"] == "vote", "vote_f1"].max()
    assert result.best_params["kernel"] == best["kernel"] and result.best_params["C"] == best["C"]


def test_winning_edge_is_widened_once():
    X, y = _problem(2)
    parts = split(y, seed=0)
    result = tune(X, y, train_idx=parts["train"], val_idx=parts["validation"], kernels=("rbf",),
                  C=[1e-3, 1e-2], gamma=[1e-4, 1e-3], class_weight=(None,))
    # on this problem the corner (C=1e-3, gamma=1e-3) beats the other three cells
    assert any("C=0.001 sat at the low edge" in note for note in result.widened), result.widened
    assert result.table["C"].min() < 1e-3
    assert len([n for n in result.widened if "sat at the low edge" in n and "C=" in n]) == 1
    assert result.table.duplicated(["kernel", "C", "gamma"]).sum() == 0


def test_tune_rejects_bad_input():
    X, y = _problem()
    parts = split(y, seed=0)
    with pytest.raises(ValueError, match="overlap"):
        tune(X, y, train_idx=parts["train"], val_idx=parts["train"][:10])
    with pytest.raises(ValueError, match="kernels"):
        tune(X, y, train_idx=parts["train"], val_idx=parts["validation"], kernels=("sigmoid",))
    with pytest.raises(ValueError, match="scoring"):
        tune(X, y, train_idx=parts["train"], val_idx=parts["validation"], scoring="auc")


@pytest.fixture(scope="module")
def simulated():
    from agnlens.simulate import simulate_set

    return simulate_set(700, seed=1, grid="paper")


@pytest.mark.parametrize("task, gate", [("binary", 0.95), ("multiclass", 0.75)])
def test_quality_gate_on_simulated_spectra(simulated, task, gate):
    X = np.asarray(simulated.flux, dtype=np.float64)
    y = simulated.labels
    parts = split(y, seed=0)
    keep = np.isin(y, ["type1", "type2"]) if task == "binary" else np.ones(y.size, bool)
    sub = {k: v[keep[v]] for k, v in parts.items()}
    result = tune(X, y, train_idx=sub["train"], val_idx=sub["validation"], kernels=("linear", "rbf"),
                  C=[0.01, 0.1, 1.0, 10.0], class_weight=(None,))
    pred = result.best_estimator.predict(X[sub["test"]])
    assert f1_score(y[sub["test"]], pred, average="macro") >= gate


def test_refine_none_calibrates_every_cell_and_agrees_with_the_model():
    X, y = _problem(3, seed=4)
    parts = split(y, seed=2)
    result = tune(X, y, train_idx=parts["train"], val_idx=parts["validation"], kernels=("rbf",), C=[0.1, 1.0, 10.0],
                  gamma=[0.003, 0.03], class_weight=(None,), refine=None, n_jobs=1, random_state=3)
    table = result.table
    assert (table["scored_by"] == "calibrated").all()
    best = table[table["best"]].iloc[0]
    Xva, yva = X[parts["validation"]], y[parts["validation"]]
    assert best["validation_f1"] == pytest.approx(f1_score(yva, result.best_estimator.predict(Xva), average="macro"))


def test_train_command_ranks_the_table_best_first():
    import pandas as pd

    from agnlens.cli.train import leading_cells

    table = pd.DataFrame({"kernel": ["linear"] * 12, "validation_f1": np.linspace(0.5, 0.9, 12),
                          "validation_accuracy": np.linspace(0.5, 0.9, 12), "best": [False] * 12})
    table.loc[3, "best"] = True  # the chosen (calibrated) cell leads even when a vote score is higher
    top = leading_cells(table, 10)
    assert len(top) == 10 and top.index[0] == 3
    assert list(top.index[1:]) == [11, 10, 9, 8, 7, 6, 5, 4, 2]
    assert len(leading_cells(table, None)) == 12


@pytest.mark.parametrize("kernel, standardize", [("rbf", False), ("linear", True)])
def test_best_estimator_is_the_model_fit_would_give(kernel, standardize):
    # tune adopts the search's own fit and calibration of the best cell instead of refitting it
    from agnlens.models.svm import SpectrumSVC

    X, y = _problem()
    parts = split(y, seed=0)
    result = tune(X, y, train_idx=parts["train"], val_idx=parts["validation"], kernels=(kernel,), C=[0.1, 1.0],
                  class_weight=(None, "balanced"), standardize=standardize, random_state=3)
    p = result.best_params
    ref = SpectrumSVC(kernel=kernel, C=p["C"], gamma=p["gamma"] if p["gamma"] is not None else "scale",
                      class_weight=p["class_weight"], standardize=standardize, calibration_cv=5,
                      random_state=3).fit(X[parts["train"]], y[parts["train"]])
    model = result.best_estimator
    np.testing.assert_array_equal(model.support_, ref.support_)
    np.testing.assert_allclose(model.calibration_, ref.calibration_, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(model.predict_proba(X), ref.predict_proba(X), rtol=0, atol=1e-12)


def test_halving_rungs_are_nested_stratified_subsets():
    from agnlens.models.search import HALVING_FACTOR, _rungs

    y = np.repeat([0, 1, 2], [2600, 1200, 900])
    rungs = _rungs(y, 0)
    assert len(rungs) == 3 and rungs[-1].size == y.size
    for small, big in zip(rungs, rungs[1:]):
        assert np.isin(small, big).all()
        assert small.size == pytest.approx(big.size / HALVING_FACTOR, rel=0.01)
        np.testing.assert_allclose(np.bincount(y[small]) / small.size, np.bincount(y) / y.size, atol=0.01)
    np.testing.assert_array_equal(rungs[0], _rungs(y, 0)[0])
    assert not np.array_equal(rungs[0], _rungs(y, 1)[0])


def test_halving_promotes_the_leading_cells_and_picks_among_the_whole_split(monkeypatch):
    from agnlens.models import search
    from agnlens.models.search import HALVING_FACTOR, _rungs

    monkeypatch.setattr(search, "HALVING_MIN_ROWS", 200)  # two rungs on this small training split
    X, y = make_classification(1000, 60, n_informative=12, n_classes=3, n_clusters_per_class=1, class_sep=1.2,
                               random_state=0)
    y = np.array(["type1", "type2", "intermediate"])[y]
    parts = split(y, seed=0)
    result = tune(X, y, train_idx=parts["train"], val_idx=parts["validation"], kernels=("linear", "rbf"),
                  C=[0.01, 0.1, 1.0], gamma=[1e-3, 1e-2], class_weight=(None,), halving=True, refine=2)
    table = result.table
    ytr = np.unique(y[parts["train"]], return_inverse=True)[1]
    first = _rungs(ytr, 0)[0]
    full = parts["train"].size
    assert set(table["n_train"]) == {first.size, full}
    promoted = table[table["n_train"] == full]
    assert len(promoted) == -(-len(table) // HALVING_FACTOR)
    # a dropped cell's vote equals a from-scratch SVC on the first rung's spectra
    row = table[table["n_train"] == first.size].iloc[0]
    Xtr, Xva, yva = X[parts["train"]], X[parts["validation"]], y[parts["validation"]]
    gamma = row["gamma"] if row["kernel"] != "linear" else "scale"
    ref = SVC(kernel=row["kernel"], C=row["C"], gamma=gamma).fit(Xtr[first], y[parts["train"]][first])
    assert row["vote_f1"] == pytest.approx(f1_score(yva, ref.predict(Xva), average="macro"), abs=1e-9)
    best = table[table["best"]].iloc[0]
    assert best["n_train"] == full and best["scored_by"] == "calibrated"
    assert (table["scored_by"] == "calibrated").sum() == 2
    model = result.best_estimator
    assert best["validation_f1"] == pytest.approx(f1_score(yva, model.predict(Xva), average="macro"), abs=1e-9)
