"""Models: the SVM classifier with exact probabilities, tuning, metrics, model files."""

from agnlens.models.default import default_model
from agnlens.models.metrics import evaluate
from agnlens.models.persistence import check_grid, load_model, save_model
from agnlens.models.svm import SpectrumSVC
from agnlens.models.tuning import TrainResult, TuningResult, split, train, tune

__all__ = [
    "SpectrumSVC", "TrainResult", "TuningResult", "check_grid", "default_model", "evaluate", "load_model",
    "save_model", "split", "train", "tune",
]
