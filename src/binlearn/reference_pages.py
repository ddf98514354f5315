"""The generated parts of the documentation's reference pages, and the check that they are fresh.

A page holds hand-written prose and generated blocks between two markers::

    <!-- generated: NAME (python -m binlearn.reference_pages) -->
    ...
    <!-- end generated -->

``config`` (docs/reference/config.md) is rendered from the config dataclasses
(:mod:`binlearn.experiment.config_reference`), ``cli`` (docs/reference/cli.md) from the
argument parser of :mod:`binlearn.cli`. Pages other than docs/results.md (which ``binlearn
reproduce --write-docs`` renders) may also quote a table of docs/results.toml between
``<!-- table: ID -->`` and ``<!-- end table -->``; they are rendered here the same way
(:func:`binlearn.reproduce.results.render_markdown`). ``python -m binlearn.reference_pages``
rewrites every such block; ``--check`` exits 1 naming the stale pages (``tests/docs`` does the
same checks).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["GENERATED", "render_cli_reference", "render_page", "stale_pages", "main"]

_BEGIN = re.compile(r"^<!-- generated: ([\w-]+) \(python -m binlearn\.reference_pages\) -->$")
_END = "<!-- end generated -->"


def render_cli_reference() -> str:
    """Every ``binlearn`` command with its arguments, from the parser (markdown)."""
    from binlearn.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help for choice in commands._choices_actions}
    lines = ["| command | what it does |", "|---|---|"]
    lines += [f"| [`binlearn {name}`](#binlearn-{name}) | {_cell(helps.get(name) or '')} |"
              for name in commands.choices]
    lines.append("")
    for name, sub in commands.choices.items():
        sub.prog = f"binlearn {name}"
        usage = " ".join(sub.format_usage().replace("usage: ", "").split())
        lines += [f"### `binlearn {name}`", "", _cell(helps.get(name) or ""), "", "```text", usage, "```", "",
                  "| argument | default | meaning |", "|---|---|---|"]
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if action.option_strings:
                metavar = "" if action.nargs == 0 else " " + (action.metavar or action.dest.upper())
                names = ", ".join(f"`{option}{metavar}`" for option in action.option_strings)
            else:
                names = f"`{action.metavar or action.dest}`"
            meaning = action.help or ""
            if action.choices is not None:
                meaning = (meaning + "; " if meaning else "") + "one of " + ", ".join(
                    f"`{choice}`" for choice in action.choices)
            if action.nargs in ("*", "+") and not action.option_strings:
                meaning += " (one or more)" if action.nargs == "+" else " (any number)"
            if isinstance(action, argparse._AppendAction):
                meaning += " (repeatable)"
            default = action.default
            shown = ("" if default in (None, False, []) or isinstance(action, argparse._StoreTrueAction)
                     else f"`{default}`")
            lines.append(f"| {names} | {shown} | {_cell(meaning)} |")
        lines.append("")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _config() -> str:
    from binlearn.experiment.config_reference import render_config_reference

    return render_config_reference()


GENERATED: dict[str, tuple[str, Callable[[], str]]] = {
    "config": ("docs/reference/config.md", _config),
    "cli": ("docs/reference/cli.md", render_cli_reference),
}
"""Block name -> (the page, relative to the repository root, and what renders the block)."""


def render_page(text: str, where: str = "page") -> str:
    """``text`` with every generated block replaced by its fresh rendering. Raises ValueError for
    an unknown block or one without its end marker."""
    from binlearn.reproduce.results import replace_marked_blocks

    def render(name: str) -> str:
        if name not in GENERATED:
            raise ValueError(f"{where}: unknown generated block {name!r}; known: {', '.join(GENERATED)}")
        return GENERATED[name][1]().rstrip("\n")

    def unclosed(name: str, _end: int | None) -> ValueError:
        return ValueError(f"{where}: generated block {name!r} has no '{_END}' line")

    return replace_marked_blocks(text, _BEGIN, _END, render, unclosed)


def _quoting_pages(root: Path) -> list[str]:
    """The docs pages, besides docs/results.md, that quote a table of docs/results.toml."""
    from binlearn.reproduce.results import marked_tables

    return [str(path.relative_to(root)) for path in sorted((root / "docs").rglob("*.md"))
            if path.relative_to(root) != Path("docs/results.md") and marked_tables(path.read_text())]


def stale_pages(root: Path, write: bool = False) -> list[str]:
    """The pages (relative paths) whose generated blocks or quoted results tables differ from a
    fresh rendering; with ``write`` they are rewritten."""
    from binlearn.reproduce.results import load_results, render_markdown

    quoting = _quoting_pages(root)
    results = load_results(root / "docs" / "results.toml") if quoting else None
    stale = []
    for page in sorted({page for page, _ in GENERATED.values()} | set(quoting)):
        path = root / page
        text = path.read_text()
        fresh = render_page(text, page)
        if results is not None and page in quoting:
            fresh = render_markdown(fresh, results, page)
        if fresh != text:
            stale.append(page)
            if write:
                path.write_text(fresh)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m binlearn.reference_pages",
                                     description="rewrite the generated blocks of the reference pages")
    parser.add_argument("--root", default=".", help="the repository root (default: the current folder)")
    parser.add_argument("--check", action="store_true", help="only say which pages are stale (exit 1)")
    args = parser.parse_args(argv)
    stale = stale_pages(Path(args.root), write=not args.check)
    for page in stale:
        print(f"{page}: {'stale' if args.check else 'rewritten'}")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
