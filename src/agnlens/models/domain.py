"""What the training spectra look like: a PCA summary stored on every model that
:func:`agnlens.models.tuning.train` makes (``model.training_domain_``), used by
:mod:`agnlens.models.applicability` to flag spectra unlike them.

It keeps the training mean, the leading principal components and their variances, and the scores of
held-out calibration spectra (the validation split), so that thresholds are drawn at judge time from
spectra the PCA did not see.
"""

from __future__ import annotations

import numpy as np

from agnlens.models.kernels import blas_for


class TrainingDomain:
    """PCA summary of the training spectra, to tell spectra like them from spectra unlike them.

    Parameters
    ----------
    n_components : int
        Leading principal components kept.

    Attributes
    ----------
    mean_ : ndarray of shape (n_pixels,)
    components_ : ndarray of shape (n_components, n_pixels)
        Orthonormal rows.
    variance_ : ndarray of shape (n_components,)
        Variance of the training scores along each component.
    calibration_residual_, calibration_mahalanobis_ : ndarray of shape (n_calibration,)
        Sorted scores of the held-out calibration spectra, from which :meth:`thresholds` draws.
    """

    def __init__(self, n_components: int = 10):
        self.n_components = n_components

    def fit(self, X, X_calibration=None) -> TrainingDomain:
        """Fit the PCA on ``X`` and the thresholds on ``X_calibration`` (held-out; default ``X``).

        Parameters
        ----------
        X : array-like of shape (n_spectra, n_pixels)
        X_calibration : array-like of shape (n_calibration, n_pixels), optional

        Returns
        -------
        self
        """
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] < 3:
            raise ValueError(f"TrainingDomain.fit needs at least 3 spectra as (n, n_pixels), got shape {X.shape}")
        k = int(min(self.n_components, X.shape[0] - 1, X.shape[1]))
        self.mean_ = X.mean(axis=0)
        _, s, vt = np.linalg.svd(X - self.mean_, full_matrices=False)
        self.components_ = np.ascontiguousarray(vt[:k])
        self.variance_ = np.maximum(s[:k] ** 2 / (X.shape[0] - 1), np.finfo(np.float64).tiny)
        cal = X if X_calibration is None else np.asarray(X_calibration, dtype=np.float64)
        residual, mahal = self.score(cal)
        self.calibration_residual_ = np.sort(residual)
        self.calibration_mahalanobis_ = np.sort(mahal)
        return self

    def thresholds(self, quantile: float, margin: float = 1.0) -> tuple[float, float]:
        """``margin`` times the ``quantile`` of the calibration residuals and Mahalanobis distances."""
        return (float(margin * np.quantile(self.calibration_residual_, quantile)),
                float(margin * np.quantile(self.calibration_mahalanobis_, quantile)))

    def score(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Reconstruction error and Mahalanobis distance.

        Parameters
        ----------
        X : array-like of shape (n_spectra, n_pixels)

        Returns
        -------
        residual : ndarray of shape (n_spectra,)
            rms over pixels of ``x`` minus its projection on the components.
        mahalanobis : ndarray of shape (n_spectra,)
            ``sqrt(sum_k t_k^2 / variance_k)`` of the component scores ``t``.
        """
        D = np.asarray(X, dtype=np.float64) - self.mean_
        with blas_for(D.shape[0]):  # the kernels' BLAS thread rule
            T = D @ self.components_.T
            residual = np.sqrt(np.mean((D - T @ self.components_) ** 2, axis=1))
        return residual, np.sqrt(np.sum(T**2 / self.variance_, axis=1))
