"""Let the documentation build offline with ``-W``.

``sphinx.ext.intersphinx`` logs "failed to reach any of the inventories" as an untyped warning when
numpy's, astropy's... ``objects.inv`` cannot be fetched (no network: CI and this machine), and an
untyped warning cannot be named in ``suppress_warnings``. This extension turns that one message
(and nothing else) into an INFO line, so a build without network still passes ``-W``; references
to those projects then render as plain text instead of links. With network they resolve as usual.
"""

from __future__ import annotations

import logging

from sphinx.application import Sphinx

# the logger intersphinx writes through (Sphinx ≥ 8: "sphinx.ext.intersphinx"; older: the module's)
_LOGGERS = ("sphinx.sphinx.ext.intersphinx", "sphinx.sphinx.ext.intersphinx._load")
_MESSAGE = "failed to reach any of the inventories"


class _DemoteUnreachable(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and _MESSAGE in str(record.msg):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def setup(app: Sphinx) -> dict:
    for name in _LOGGERS:
        logging.getLogger(name).addFilter(_DemoteUnreachable())
    return {"parallel_read_safe": True, "parallel_write_safe": True}
