"""Figures (matplotlib, imported lazily; no pyplot state).

* :func:`plot_spectra` (``agnlens.plot.spectra``) — spectra stacked in the rest frame, normalised
  at 5100 Å, lines marked;
* ``agnlens.plot.embedding`` — the t-SNE map; ``agnlens.plot.metrics`` — confusion matrices and
  the hyper-parameter search.
"""

from agnlens.plot.spectra import plot_spectra

__all__ = ["plot_spectra"]
