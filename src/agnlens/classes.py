"""The classes and subtypes of AGN, defined once for the simulator, the baseline, the models and the docs.

Two vocabularies meet here, and the difference matters:

* **Subtypes** follow Osterbrock and Winkler (Winkler 1992, MNRAS 257, 677) and are measured from
  the spectrum: with R = [O III] 5008 / Hβ(total, narrow + broad),

  ========  ==========================================================
  ``1.0``   broad Hβ present and R ≤ 0.3
  ``1.2``   broad Hβ present and 0.3 < R ≤ 1
  ``1.5``   broad Hβ present and 1 < R ≤ 4
  ``1.8``   broad Hβ present (weak) and R > 4
  ``1.9``   no broad Hβ, broad wings in Hα only
  ``2``     no broad Balmer line
  ========  ==========================================================

* **Classes** are what the classifier predicts: ``type1``, ``type2``, ``intermediate``. Peruzzi et
  al. (2021) built them from samples, not from R: their type 1 are *luminous quasars*
  (0.4 ≤ z ≤ 0.75) selected as such, their intermediates are *Seyferts* of subtype 1.2–1.9 at
  z < 0.1 from a hand-classified catalogue, their type 2 are Seyfert 2s. A quasar with R = 0.6 is a
  Winkler 1.2 and still a study type 1. :func:`class_of_subtype` is the mapping for Seyferts
  (1.0 → type1, 1.2–1.9 → intermediate, 2 → type2); a luminous quasar of subtype 1.2 or 1.5 keeps
  the class ``type1`` (see :data:`QUASAR_SUBTYPES`).

* **Conventions** (:data:`CONVENTIONS`) say which class a labelled spectrum has, from its sample
  class and its subtype (:func:`class_under`):

  ``"study"``
      The reference study's sample-based classes, as above: an intermediate is a Seyfert of
      subtype 1.2–1.9 (about half of its intermediate catalogue are Winkler 1.2/1.5 Seyferts).
      The simulator labels in this convention and ``agnlens demo`` reproduces the study with it.
  ``"spectroscopic"``
      The classes of SDSS-style catalogues and much of the literature (and of
      ``data/sdss/labels.csv``): any spectrum with broad Hβ and R ≤ 4 (subtype 1.0, 1.2, 1.5) is
      ``type1``; 1.8 and 1.9 are ``intermediate``; 2 is ``type2``. The built-in default models
      (``classify``/``explain`` without ``--model``) answer in this convention.
"""

from __future__ import annotations

import math

__all__ = [
    "CLASSES",
    "CLASS_COLOURS",
    "CLASS_NAMES",
    "CONVENTIONS",
    "QUASAR_SUBTYPES",
    "R_THRESHOLDS",
    "SDSS_CLASS",
    "SUBTYPES",
    "TASKS",
    "TASK_CLASSES",
    "class_of_subtype",
    "class_under",
    "winkler_subtype",
]

#: The three classes, in the order used for counts, colours and tables.
CLASSES: tuple[str, ...] = ("type1", "type2", "intermediate")
#: Human-readable class names for legends and tables.
CLASS_NAMES: dict[str, str] = {"type1": "type 1", "type2": "type 2", "intermediate": "intermediate"}
#: Colours of the classes in every figure and in the report's map (Okabe-Ito, readable by
#: colour-blind readers).
CLASS_COLOURS: dict[str, str] = {"type1": "#0072B2", "type2": "#D55E00", "intermediate": "#009E73"}

#: Classes of each task (the binary task leaves intermediates out, as the reference study did).
TASK_CLASSES: dict[str, tuple[str, ...]] = {
    "binary": ("type1", "type2"),
    "multiclass": ("type1", "type2", "intermediate"),
}

#: The tasks, in the order a study trains them (a model and a tuning table each).
TASKS: tuple[str, ...] = tuple(TASK_CLASSES)
#: Subtypes, from the most to the least broad-line dominated.
SUBTYPES: tuple[str, ...] = ("1.0", "1.2", "1.5", "1.8", "1.9", "2")
#: Winkler's thresholds on R = [O III] 5008 / Hβ(total) between 1.0 | 1.2 | 1.5 | 1.8.
R_THRESHOLDS: tuple[float, float, float] = (0.3, 1.0, 4.0)
#: Subtypes a luminous quasar (a study type 1) can have while keeping the class ``type1``.
QUASAR_SUBTYPES: tuple[str, ...] = ("1.0", "1.2", "1.5")

#: The SDSS pipeline ``CLASS`` and ``SUBCLASS`` typical of each class (what the simulator writes
#: into its SDSS-format files): quasars are ``QSO BROADLINE``, Seyferts are galaxies.
SDSS_CLASS: dict[str, tuple[str, str]] = {
    "type1": ("QSO", "BROADLINE"),
    "type2": ("GALAXY", "AGN"),
    "intermediate": ("GALAXY", "AGN BROADLINE"),
}

#: The class conventions (see the module docstring): the study's sample-based classes, the default
#: of the simulator and the demo; the spectroscopic classes of SDSS-style catalogues.
CONVENTIONS: tuple[str, ...] = ("study", "spectroscopic")

_SUBTYPE_CLASS = {"1.0": "type1", "1.2": "intermediate", "1.5": "intermediate", "1.8": "intermediate",
                  "1.9": "intermediate", "2": "type2"}


def winkler_subtype(r_total: float, broad_hbeta: bool, broad_halpha: bool) -> str:
    """The Osterbrock–Winkler subtype of a spectrum.

    Parameters
    ----------
    r_total : float
        [O III] 5008 / Hβ(narrow + broad) flux ratio; NaN when unmeasured (a broad-Hβ spectrum
        with an unmeasured ratio is taken as 1.0, the broad line dominating).
    broad_hbeta, broad_halpha : bool
        Whether a broad component of Hβ (of Hα) is detected.

    Returns
    -------
    str
        One of :data:`SUBTYPES`.
    """
    if broad_hbeta:
        low, mid, high = R_THRESHOLDS
        if not math.isfinite(r_total) or r_total <= low:
            return "1.0"
        if r_total <= mid:
            return "1.2"
        if r_total <= high:
            return "1.5"
        return "1.8"
    return "1.9" if broad_halpha else "2"


def class_of_subtype(subtype: str, *, quasar: bool = False) -> str:
    """The class of a subtype: Seyfert 1.0 → ``type1``, 1.2–1.9 → ``intermediate``, 2 → ``type2``.

    Parameters
    ----------
    subtype : str
        One of :data:`SUBTYPES`.
    quasar : bool, default False
        A luminous quasar (as the study's type 1 sample): subtypes in :data:`QUASAR_SUBTYPES` map to
        ``type1``.
    """
    if subtype not in _SUBTYPE_CLASS:
        raise ValueError(f"unknown subtype {subtype!r}; expected one of {', '.join(SUBTYPES)}")
    if quasar and subtype in QUASAR_SUBTYPES:
        return "type1"
    return _SUBTYPE_CLASS[subtype]


def class_under(label: str, subtype: str, convention: str = "study") -> str:
    """The class of a spectrum of study class ``label`` and Winkler ``subtype`` under ``convention``.

    Parameters
    ----------
    label : str
        The class in the study's convention (a simulated spectrum's ``label``); one of
        :data:`CLASSES`.
    subtype : str
        Its Winkler subtype, one of :data:`SUBTYPES`.
    convention : {"study", "spectroscopic"}, default "study"
        ``"study"`` returns ``label``; ``"spectroscopic"`` returns the class of the subtype alone
        (1.0/1.2/1.5 → ``type1``, 1.8/1.9 → ``intermediate``, 2 → ``type2``).

    Returns
    -------
    str
        One of :data:`CLASSES`.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown class convention {convention!r}; expected one of {', '.join(CONVENTIONS)}")
    if label not in CLASSES:
        raise ValueError(f"unknown class {label!r}; expected one of {', '.join(CLASSES)}")
    quasar_class = class_of_subtype(subtype, quasar=True)  # also checks the subtype
    return label if convention == "study" else quasar_class
