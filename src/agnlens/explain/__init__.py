"""Explaining decisions: exact saliency (gradients) and other attribution methods."""

from agnlens.explain.attribution import Saliency, continuum, saliency
from agnlens.explain.contributions import describe_contributions, line_contributions
from agnlens.explain.curves import Faithfulness, deletion_curve, faithfulness, insertion_curve
from agnlens.explain.gradient import decision_gradient, proba_gradient, verify
from agnlens.explain.linestats import CentreWings, broad_line_spectra, centre_wings, line_table
from agnlens.explain.result import SaliencyWriter

__all__ = [
    "CentreWings", "Faithfulness", "Saliency", "SaliencyWriter", "broad_line_spectra", "centre_wings", "continuum",
    "decision_gradient", "deletion_curve", "describe_contributions", "faithfulness", "insertion_curve",
    "line_contributions", "line_table", "proba_gradient", "saliency", "verify",
]
