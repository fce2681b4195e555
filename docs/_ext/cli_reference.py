"""``.. agnlens-cli::`` — the command-line reference, generated from ``agnlens.cli``'s parsers.

Walks the parser of :func:`agnlens.cli.build_parser` and writes one section per subcommand with
its one-line help and its full ``--help`` text as a literal block, exactly as a terminal shows it
(help texts are plain text, not reStructuredText, so they are never parsed as markup).
"""

from __future__ import annotations

import argparse
import os

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

WIDTH = "88"  # argparse wraps help at $COLUMNS; 88 fits the page


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            out += [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return out


def _block(text: str) -> nodes.literal_block:
    return nodes.literal_block(text=text, language="text")  # terminal text: no highlighting


class AgnlensCli(SphinxDirective):
    has_content = False

    def run(self) -> list[nodes.Node]:
        from agnlens.cli import build_parser

        old = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = WIDTH
        try:
            parser = build_parser()
            result: list[nodes.Node] = [_block(parser.format_help())]
            for name, summary, sub in _subcommands(parser):
                section = nodes.section(ids=[f"agnlens-{name}"])
                section += nodes.title(text=f"agnlens {name}")
                if summary:
                    section += nodes.paragraph(text=summary[0].upper() + summary[1:] + ".")
                section += _block(sub.format_help())
                result.append(section)
        finally:
            if old is None:
                os.environ.pop("COLUMNS", None)
            else:
                os.environ["COLUMNS"] = old
        return result


def setup(app: Sphinx) -> dict:
    app.add_directive("agnlens-cli", AgnlensCli)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
