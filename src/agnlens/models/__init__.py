"""Models: the SVM classifier with exact probabilities."""

from agnlens.models.svm import SpectrumSVC

__all__ = ["SpectrumSVC"]
