"""Figures (matplotlib, imported lazily; no pyplot state).

* :func:`plot_spectra` (``agnlens.plot.spectra``) — spectra stacked in the rest frame, normalised
  at 5100 Å, lines marked;
* ``agnlens.plot.embedding`` — the t-SNE map; ``agnlens.plot.metrics`` — confusion matrices and
  the hyper-parameter search;
* ``agnlens.plot.saliency`` — a spectrum as a line with its attribution as a colour band, and the
  line statistics; ``agnlens.plot.saliency_gallery`` — many panels on one colour scale;
  ``agnlens.plot.saliency_frames`` — the same figure redrawn fast for many spectra;
  ``agnlens.plot.line_labels`` — lines marked and labelled without overlaps;
* ``agnlens.plot.save`` — writing figures (PNG, PDF, SVG; the default resolution).
"""

from agnlens.plot.spectra import plot_spectra

__all__ = ["plot_spectra"]
