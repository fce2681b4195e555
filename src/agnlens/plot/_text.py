"""Text from data (spec_ids, labels, class names) shown exactly as given in a figure.

Matplotlib reads a string with an even number of unescaped ``$`` as mathtext: a spec_id such as
``$\\foo$`` then fails to draw (and ``$x$`` draws as an italic x). Every plot function passes such
text through :func:`plain` where it hands it to matplotlib, and only there (escaping twice would
show the backslash).
"""

from __future__ import annotations


def plain(text) -> str:
    """``text`` as a string whose dollar signs matplotlib shows literally (``$`` → ``\\$``)."""
    return str(text).replace("$", r"\$")
