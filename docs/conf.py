"""Sphinx configuration of the agnlens documentation.

Build (offline is fine): ``pip install -e '.[docs]' && python -m sphinx -W -b html docs OUT``.
The examples in ``docs/examples`` run at build time (sphinx-gallery) on small data.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import agnlens

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
os.environ.setdefault("MPLBACKEND", "Agg")

project = "agnlens"
author = "agnlens developers"
copyright = "agnlens developers, BSD-3-Clause"
release = agnlens.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "intersphinx_offline",
    "cli_reference",
]

# results-layout.md shows metrics.json with "..." for elided values: not valid JSON to highlight
suppress_warnings = ["misc.highlighting_failure"]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = [
    "_build",
    "**.ipynb_checkpoints",
    "real_sdss",
    "examples",  # the gallery's sources; sphinx-gallery renders them into auto_examples
    "auto_examples/*.ipynb",
    "auto_examples/*.py",
    "auto_examples/*.zip",
    "auto_examples/*.md5",
    "auto_examples/*.json",
]

# ---- markdown pages (the existing how-tos are markdown)
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# ---- API reference from the docstrings
autosummary_generate = True
autosummary_imported_members = False
templates_path = ["_templates"]  # classes: the class's own members, not scikit-learn's inherited ones
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
    # made on every scikit-learn estimator by metadata routing; documented by scikit-learn
    "exclude-members": "set_fit_request, set_predict_request, set_predict_proba_request, set_score_request, "
    "set_transform_request, get_metadata_routing",
}
autodoc_typehints = "none"  # numpydoc's parameter lists carry the types with shapes
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = False
numpydoc_xref_param_type = False

# ---- links to the projects agnlens builds on (offline builds render them as text)
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable", None),
    "astropy": ("https://docs.astropy.org/en/stable", None),
    "specutils": ("https://specutils.readthedocs.io/en/stable", None),
    "sklearn": ("https://scikit-learn.org/stable", None),
    "pandas": ("https://pandas.pydata.org/docs", None),
}
intersphinx_timeout = 5

# ---- worked examples, executed at build time
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "min_reported_time": 1,
    "image_scrapers": ("matplotlib",),
    "reset_modules": ("matplotlib",),
}

# ---- HTML
html_theme = "furo"
html_title = f"agnlens {release}"
html_static_path: list[str] = []
html_extra_path: list[str] = []
