"""The SVM classifier of agnlens: scikit-learn's SVC for the optimisation, closed-form probabilities.

:class:`SpectrumSVC` trains ``sklearn.svm.SVC`` (libsvm) — on one precomputed kernel matrix shared by
the model and its calibration folds (:mod:`agnlens.models.kernels`; up to ``MAX_PRECOMPUTED``
training spectra) — and then keeps only what the math needs —
support vectors, one-vs-one coefficients, intercepts, the effective ``gamma_``, an optional
standardising scaler and the calibration sigmoids — and computes kernels, decision values and
probabilities itself with BLAS in float64. The same formulas are differentiated exactly by
:mod:`agnlens.explain.gradient`.
"""

from __future__ import annotations

import logging
import numbers

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from agnlens.models.coupling import couple, fit_sigmoid, sigmoid_proba
from agnlens.models.kernels import (
    MAX_PRECOMPUTED,
    blas_for,
    default_threads,
    fit_with_folds,
    gram,
    kernel_from_gram,
    sqnorms,
)

log = logging.getLogger(__name__)

KERNELS = ("linear", "rbf", "poly")

#: Rows per block when computing kernel matrices (bounds memory: block x n_support_vectors floats).
PREDICT_CHUNK = 1024


class SpectrumSVC(ClassifierMixin, BaseEstimator):
    """Support vector classifier with exact, differentiable, predict-consistent probabilities.

    Parameters
    ----------
    kernel : {"linear", "rbf", "poly"}
        ``linear``: ``<x, s>``; ``rbf``: ``exp(-gamma |x - s|^2)``; ``poly``:
        ``(gamma <x, s> + coef0)^degree``.
    C : float > 0
        Soft-margin penalty.
    gamma : {"scale", "auto"} or float > 0
        Kernel width. ``"scale"`` is ``1 / (n_features * X.var())`` of the (standardised) training
        data, ``"auto"`` is ``1 / n_features``; the value used is stored in ``gamma_``.
    degree : int >= 1
        Degree of the polynomial kernel.
    coef0 : float
        Constant of the polynomial kernel.
    class_weight : None, "balanced" or dict {label: weight}
        Per-class multiplier of ``C``.
    standardize : bool
        Standardise every feature (pixel) to zero mean and unit variance before the SVM
        (``scaler_``); gradients go through it.
    calibration_cv : int >= 2 or None
        Number of stratified folds whose out-of-fold decision values fit the probability
        sigmoids (reduced to the smallest class count if needed). ``None`` fits them on the
        in-sample decision values of the final model (biased towards over-confidence; only for
        tiny data sets).
    random_state : int or None
        Seed of the calibration folds; fitting is deterministic given it.

    The calibration sigmoids are fitted with the class weights as sample weights, so that the
    probabilities (and hence ``predict``) keep the class weighting the SVM was trained with.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    gamma_ : float
        Effective kernel width (also set, unused, for the linear kernel).
    scaler_ : sklearn.preprocessing.StandardScaler or None
    support_vectors_ : ndarray of shape (n_SV, n_features)
        In the scaled space when ``standardize`` is true.
    support_ : ndarray of shape (n_SV,)
        Indices of the support vectors in the training data.
    n_support_ : ndarray of shape (n_classes,)
    dual_coef_ : ndarray of shape (n_classes - 1, n_SV)
        As in ``sklearn.svm.SVC`` (libsvm layout; sign flipped for two classes as sklearn does).
    intercept_ : ndarray of shape (n_pairs,)
        As in ``sklearn.svm.SVC``.
    pairs_ : ndarray of int, shape (n_pairs, 2)
        The one-vs-one structure: a positive decision value of pair ``q`` favours class index
        ``pairs_[q, 0]`` over ``pairs_[q, 1]``. Multiclass: ``(i, j)`` with ``i < j`` in sklearn's
        order; binary: ``[[1, 0]]`` (sklearn's sign: positive means ``classes_[1]``).
    pair_coef_ : ndarray of shape (n_pairs, n_SV)
        Coefficient of every support vector in every pair's decision function, so that
        ``pairwise_decision_function(X) = K(X, SV) @ pair_coef_.T + intercept_``.
    calibration_ : ndarray of shape (n_pairs, 2)
        Platt parameters ``(A, B)`` per pair: ``P(pairs_[q, 0] | pair) = 1 / (1 + exp(A f + B))``.
    linear_coef_ : ndarray of shape (n_pairs, n_features) or None
        ``pair_coef_ @ support_vectors_``: each pair's weight vector in the scaled space, so that
        ``pairwise_decision_function(X) = scale(X) @ linear_coef_.T + intercept_``; None unless
        ``kernel="linear"``.

    Notes
    -----
    * ``predict_proba``: binary — the sigmoid of the decision value; multiclass — the pairwise
      sigmoids coupled exactly by the linear system of Wu, Lin & Weng (2004), method 2 (see
      :mod:`agnlens.models.coupling`).
    * ``predict`` is *defined* as ``classes_[argmax(predict_proba(X))]``, so the predicted class is
      always the most probable one (unlike ``sklearn.svm.SVC(probability=True)``).
    * ``decision_function`` is consistent with ``predict`` as scikit-learn requires of classifiers:
      binary — the calibrated log-odds ``log(p1 / p0) = -(A f + B)``, an increasing affine map of
      SVC's decision value; multiclass — ``log predict_proba`` (shape (n, n_classes)). The raw SVM
      values, equal to ``SVC(decision_function_shape="ovo").decision_function``, are
      :meth:`pairwise_decision_function`.
    * The gradient hook (what :mod:`agnlens.explain.gradient` differentiates, and nothing else it
      needs): :meth:`scale` — the input as the kernel sees it (``d/dX = d/dZ / scaler_.scale_``),
      :meth:`kernel_from_gram` — ``K(Z, SV)`` from the Gram block ``Z @ support_vectors_.T``, and
      the fitted ``support_vectors_``, ``pair_coef_``, ``linear_coef_``, ``intercept_``,
      ``calibration_``, ``pairs_``, ``gamma_``.
    """

    def __init__(
        self,
        *,
        kernel: str = "linear",
        C: float = 1.0,
        gamma="scale",
        degree: int = 3,
        coef0: float = 0.0,
        class_weight=None,
        standardize: bool = False,
        calibration_cv: int | None = 5,
        random_state: int | None = None,
    ):
        self.kernel = kernel
        self.C = C
        self.gamma = gamma
        self.degree = degree
        self.coef0 = coef0
        self.class_weight = class_weight
        self.standardize = standardize
        self.calibration_cv = calibration_cv
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    def _validate_params_(self) -> None:
        name = type(self).__name__
        if self.kernel not in KERNELS:
            raise ValueError(f"{name}: kernel must be one of {KERNELS}, got {self.kernel!r}")
        if not isinstance(self.C, numbers.Real) or not self.C > 0:
            raise ValueError(f"{name}: C must be a positive number, got {self.C!r}")
        if isinstance(self.gamma, str):
            if self.gamma not in ("scale", "auto"):
                raise ValueError(f"{name}: gamma must be 'scale', 'auto' or a positive number, got {self.gamma!r}")
        elif not isinstance(self.gamma, numbers.Real) or not self.gamma > 0:
            raise ValueError(f"{name}: gamma must be 'scale', 'auto' or a positive number, got {self.gamma!r}")
        if not isinstance(self.degree, numbers.Integral) or self.degree < 1:
            raise ValueError(f"{name}: degree must be an integer >= 1, got {self.degree!r}")
        if not isinstance(self.coef0, numbers.Real):
            raise TypeError(f"{name}: coef0 must be a number, got {self.coef0!r}")
        if not (self.class_weight is None or self.class_weight == "balanced" or isinstance(self.class_weight, dict)):
            raise ValueError(
                f"{name}: class_weight must be None, 'balanced' or a dict {{label: weight}}, got {self.class_weight!r}"
            )
        cv = self.calibration_cv
        if cv is not None and (not isinstance(cv, numbers.Integral) or cv < 2):
            raise ValueError(f"{name}: calibration_cv must be an integer >= 2 or None, got {cv!r}")

    def _svc(self, class_weight) -> SVC:
        return SVC(
            kernel=self.kernel,
            C=float(self.C),
            gamma=self.gamma_,
            degree=int(self.degree),
            coef0=float(self.coef0),
            class_weight=class_weight,
            decision_function_shape="ovo",
            cache_size=500,
        )

    def fit(self, X, y) -> SpectrumSVC:
        """Fit the SVM and its probability calibration.

        Parameters
        ----------
        X : array-like of shape (n_spectra, n_features)
        y : array-like of shape (n_spectra,)
            Class labels (at least two classes).

        Returns
        -------
        self
        """
        Z, y_enc, class_weight = self._prepare(X, y)
        folds = self._folds(y_enc)
        if Z.shape[0] <= MAX_PRECOMPUTED:
            # one kernel matrix for the model and its calibration folds (fits on sub-blocks)
            z_sq = sqnorms(Z)
            K = kernel_from_gram(gram(Z, Z), self.kernel, self.gamma_, int(self.degree), float(self.coef0), z_sq, z_sq,
                                 overwrite=True)
            svc, f_oof = fit_with_folds(K, y_enc, self.C, class_weight, folds, n_jobs=default_threads())
            del K
            self._set_solution(svc, Z, precomputed=True)
        else:
            svc = self._svc(class_weight).fit(Z, y_enc)
            self._set_solution(svc, Z, precomputed=False)
            f_oof = None if folds is None else self._oof_libsvm(Z, y_enc, class_weight, folds)
        if f_oof is None:  # no calibration folds: in-sample decision values
            log.debug("calibration on in-sample decision values (smallest class: %d)", np.bincount(y_enc).min())
            f_oof = self._pairwise_from_scaled(Z)
        self.calibration_ = fit_calibration(f_oof, y_enc, self.pairs_,
                                            class_weights(class_weight, y_enc, self.classes_.size))
        return self

    def _prepare(self, X, y) -> tuple[np.ndarray, np.ndarray, dict | str | None]:
        """Validate, set ``classes_``, ``scaler_`` and ``gamma_``; return the scaled spectra, the class
        indices and the class weights keyed by class index."""
        self._validate_params_()
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, y_enc = np.unique(y, return_inverse=True)
        if self.classes_.size < 2:
            raise ValueError(
                f"{type(self).__name__}.fit: y holds only one class ({self.classes_[0]!r}); "
                "a classifier needs at least two classes"
            )
        if self.standardize:
            self.scaler_ = StandardScaler().fit(X)
            Z = self.scaler_.transform(X)
        else:
            self.scaler_ = None
            Z = X
        if isinstance(self.gamma, str):
            var = Z.var()
            self.gamma_ = (1.0 / (Z.shape[1] * var) if var != 0 else 1.0) if self.gamma == "scale" else 1.0 / Z.shape[1]
        else:
            self.gamma_ = float(self.gamma)
        class_weight = self.class_weight
        if isinstance(class_weight, dict):
            unknown = set(class_weight) - set(self.classes_.tolist())
            if unknown:
                raise ValueError(
                    f"{type(self).__name__}: class_weight names classes {sorted(map(str, unknown))} that are "
                    f"not in y (classes {self.classes_.tolist()})"
                )
            index = {c: i for i, c in enumerate(self.classes_.tolist())}
            class_weight = {index[c]: float(w) for c, w in class_weight.items()}
        return Z, y_enc, class_weight

    def _set_solution(self, svc: SVC, Z: np.ndarray, precomputed: bool) -> None:
        """Keep what the math needs of a fitted libsvm model (``Z``: the scaled training spectra)."""
        self.support_vectors_ = np.ascontiguousarray(Z[svc.support_] if precomputed else svc.support_vectors_,
                                                     dtype=np.float64)
        self.support_ = svc.support_.copy()
        self.n_support_ = svc.n_support_.copy()
        self.dual_coef_ = np.asarray(svc.dual_coef_, dtype=np.float64).copy()
        self.intercept_ = np.asarray(svc.intercept_, dtype=np.float64).copy()
        self.pairs_, self.pair_coef_ = pair_structure(self.dual_coef_, self.n_support_)
        self._sv_sqnorm = sqnorms(self.support_vectors_)
        self._linear_w = self.pair_coef_ @ self.support_vectors_ if self.kernel == "linear" else None

    def adopt_fit(self, X, y, svc: SVC, calibration: np.ndarray) -> SpectrumSVC:
        """Become the model ``fit(X, y)`` would give, from a libsvm model already fitted on the
        precomputed kernel of these spectra and these parameters, and its calibration (the tuning
        search's; :func:`agnlens.models.tuning.tune` uses it instead of refitting the best cell).
        The kernel, the folds and the sigmoid fits are the same as ``fit``'s, so is the model."""
        Z, _, _ = self._prepare(X, y)
        self._set_solution(svc, Z, precomputed=True)
        self.calibration_ = np.array(calibration, dtype=np.float64)
        return self

    def _folds(self, y_enc) -> list | None:
        """Stratified calibration folds (row indices), or None to calibrate in-sample."""
        n_splits = calibration_folds(self.calibration_cv, y_enc)
        if n_splits is None:
            return None
        folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=self.random_state)
        return list(folds.split(np.zeros((y_enc.size, 1)), y_enc))

    def _oof_libsvm(self, Z, y_enc, class_weight, folds) -> np.ndarray:
        """Out-of-fold decision values with libsvm evaluating the kernel (sets too large to precompute)."""
        f = np.empty((Z.shape[0], self.pairs_.shape[0]))
        for train, held in folds:
            svc = self._svc(class_weight).fit(Z[train], y_enc[train])
            f[held] = svc.decision_function(Z[held]).reshape(held.size, -1)
        return f

    # ------------------------------------------------------------------ prediction
    @property
    def linear_coef_(self) -> np.ndarray | None:
        # kept as ``_linear_w`` in the fitted state, as models saved by agnlens 0.2 hold it
        return self._linear_w

    def scale(self, X) -> np.ndarray:
        """Validated float64 input, standardised when the model has a scaler: the spectra as the
        kernel sees them (the first step of every prediction, and the gradient hook's input).

        Parameters
        ----------
        X : array-like of shape (n, n_features)

        Returns
        -------
        ndarray of shape (n, n_features)
            ``Z = (X - scaler_.mean_) / scaler_.scale_``, or ``X`` itself without a scaler.

        A finite float64 ndarray of the fitted width skips scikit-learn's validation (its fixed cost
        dominated small batches); anything else goes through ``validate_data``, which converts or
        explains what is wrong.
        """
        if (type(X) is np.ndarray and X.dtype == np.float64 and X.ndim == 2 and X.shape[0] > 0
                and hasattr(self, "calibration_") and not hasattr(self, "feature_names_in_")
                and X.shape[1] == self.n_features_in_ and np.isfinite(X.sum())):
            if self.scaler_ is None:
                return X
            Z = X - self.scaler_.mean_
            Z /= self.scaler_.scale_
            return Z
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self.scaler_.transform(X) if self.scaler_ is not None else X

    def _kernel(self, Z: np.ndarray) -> np.ndarray:
        """Kernel matrix K(Z, SV), shape (n, n_SV), one BLAS product."""
        return self.kernel_from_gram(Z, gram(Z, self.support_vectors_), overwrite=True)

    def kernel_from_gram(self, Z: np.ndarray, G: np.ndarray, *, overwrite: bool = False) -> np.ndarray:
        """Kernel matrix ``K(Z, SV)`` from the Gram block ``G = Z @ support_vectors_.T``.

        Parameters
        ----------
        Z : ndarray of shape (n, n_features)
            Scaled spectra (:meth:`scale`).
        G : ndarray of shape (n, n_SV)
            ``Z @ support_vectors_.T``; overwritten by the kernel when ``overwrite``.
        overwrite : bool, default False

        Returns
        -------
        ndarray of shape (n, n_SV)
        """
        zz = sqnorms(Z) if self.kernel == "rbf" else None
        return kernel_from_gram(G, self.kernel, self.gamma_, int(self.degree), float(self.coef0), zz,
                                self._sv_sqnorm, overwrite=overwrite)

    def _pairwise_from_scaled(self, Z: np.ndarray) -> np.ndarray:
        out = np.empty((Z.shape[0], self.pairs_.shape[0]))
        with blas_for(Z.shape[0]):
            for start in range(0, Z.shape[0], PREDICT_CHUNK):
                block = Z[start : start + PREDICT_CHUNK]
                if self._linear_w is not None:
                    out[start : start + block.shape[0]] = block @ self._linear_w.T + self.intercept_
                else:
                    out[start : start + block.shape[0]] = self._kernel(block) @ self.pair_coef_.T + self.intercept_
        return out

    def pairwise_decision_function(self, X) -> np.ndarray:
        """Raw one-vs-one SVM decision values.

        Parameters
        ----------
        X : array-like of shape (n, n_features)

        Returns
        -------
        ndarray of shape (n, n_pairs)
            Equal to ``SVC(decision_function_shape="ovo").decision_function`` (binary: shape
            (n, 1), positive favours ``classes_[1]``).
        """
        return self._pairwise_from_scaled(self.scale(X))

    def _proba_from_pairwise(self, f: np.ndarray) -> np.ndarray:
        return proba_from_pairwise(f, self.calibration_, self.pairs_, self.classes_.size)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (closed form, differentiable; rows sum to 1).

        Parameters
        ----------
        X : array-like of shape (n, n_features)

        Returns
        -------
        ndarray of shape (n, n_classes)
            Columns in the order of ``classes_``.
        """
        return self._proba_from_pairwise(self.pairwise_decision_function(X))

    def predict(self, X) -> np.ndarray:
        """Most probable class: ``classes_[argmax(predict_proba(X), axis=1)]``.

        Parameters
        ----------
        X : array-like of shape (n, n_features)

        Returns
        -------
        ndarray of shape (n,)
        """
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def decision_function(self, X) -> np.ndarray:
        """Scores consistent with :meth:`predict` (see Notes of the class).

        Parameters
        ----------
        X : array-like of shape (n, n_features)

        Returns
        -------
        ndarray of shape (n,) for two classes (calibrated log-odds of ``classes_[1]``), else
        (n, n_classes) (log-probabilities).
        """
        f = self.pairwise_decision_function(X)
        if self.classes_.size == 2:
            A, B = self.calibration_[0]
            return -(A * f[:, 0] + B)
        p = self._proba_from_pairwise(f)
        return np.log(np.maximum(p, np.finfo(np.float64).tiny))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags


def calibration_folds(calibration_cv: int | None, y_enc: np.ndarray) -> int | None:
    """Number of stratified calibration folds (None: calibrate in-sample)."""
    if calibration_cv is None:
        return None
    n = min(int(calibration_cv), int(np.bincount(y_enc).min()))
    return n if n >= 2 else None


def fit_calibration(f: np.ndarray, y_enc: np.ndarray, pairs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Platt parameters ``(A, B)`` per pair, shape (n_pairs, 2), from held-out decision values.

    Parameters
    ----------
    f : ndarray of shape (n, n_pairs)
        Held-out pairwise decision values.
    y_enc : ndarray of int, shape (n,)
        Class indices.
    pairs : ndarray of int, shape (n_pairs, 2)
    weights : ndarray of shape (n_classes,)
        Class weights (sample weights of the sigmoid fits).
    """
    cal = np.empty((pairs.shape[0], 2))
    w = weights[y_enc]
    for q, (a, b) in enumerate(pairs):
        sel = (y_enc == a) | (y_enc == b)
        cal[q] = fit_sigmoid(f[sel, q], y_enc[sel] == a, w[sel])
    return cal


def proba_from_pairwise(f: np.ndarray, calibration: np.ndarray, pairs: np.ndarray, n_classes: int) -> np.ndarray:
    """Class probabilities, shape (n, n_classes), from pairwise decision values ``f`` (n, n_pairs)."""
    r = sigmoid_proba(f, calibration[:, 0], calibration[:, 1])
    if n_classes == 2:
        return np.column_stack([1.0 - r[:, 0], r[:, 0]])
    return couple(r, pairs, n_classes)


def class_weights(class_weight, y_enc: np.ndarray, n_classes: int) -> np.ndarray:
    """Weight per class index, as libsvm applies them to C (1 when no class weighting)."""
    if class_weight is None:
        return np.ones(n_classes)
    if class_weight == "balanced":
        counts = np.bincount(y_enc, minlength=n_classes)
        return y_enc.size / (n_classes * np.maximum(counts, 1))
    w = np.ones(n_classes)
    for i, v in class_weight.items():
        w[i] = v
    return w


def pair_structure(dual_coef: np.ndarray, n_support: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-vs-one pairs and per-pair coefficient rows from libsvm's dual-coefficient layout."""
    n_classes = n_support.size
    n_sv = dual_coef.shape[1]
    if n_classes == 2:
        return np.array([[1, 0]]), dual_coef[:1].copy()
    starts = np.concatenate([[0], np.cumsum(n_support)])
    pairs, rows = [], []
    for i in range(n_classes):
        for j in range(i + 1, n_classes):
            row = np.zeros(n_sv)
            si, sj = slice(starts[i], starts[i + 1]), slice(starts[j], starts[j + 1])
            row[si] = dual_coef[j - 1, si]
            row[sj] = dual_coef[i, sj]
            pairs.append((i, j))
            rows.append(row)
    return np.array(pairs), np.array(rows)
