"""Explaining decisions: exact saliency (gradients) and other attribution methods."""

from agnlens.explain.gradient import decision_gradient, proba_gradient, verify

__all__ = ["decision_gradient", "proba_gradient", "verify"]
