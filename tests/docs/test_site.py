"""The documentation site's sources: every page is in the navigation, every results table on a page
is what docs/results.toml renders to, and no figure (a picture, or a speed or size on the README)
comes without the machine and the command that measured it."""

from __future__ import annotations

import re
from pathlib import Path

from binlearn.reproduce.results import load_results, marked_tables, render_markdown

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
MACHINES = ("CPU-2", "AMD EPYC")
"""The machines figures were measured on, as the pages name them (docs/results.md and
docs/conv-ep.md describe each)."""
COMMAND = re.compile(r"`(?:binlearn |python benchmarks/|torchrun )[^`]*`|binlearn reproduce --write-docs")
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")
PERFORMANCE = re.compile(
    r"\d[\d,.]*\s*(?:×(?!\s*\d)|x faster|samples/s|GOPS|TOPS|ms\b|s of training|seconds)")


def _nav_pages() -> list[str]:
    """The files mkdocs.yml's nav names (read without a YAML library: the test extra has none)."""
    nav = (ROOT / "mkdocs.yml").read_text().split("\nnav:\n", 1)[1]
    return re.findall(r"^\s+- (?:[^\n]*?: )?([\w./-]+\.(?:md|py))\s*$", nav, flags=re.M)


def _pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md"))


def test_every_page_is_in_the_navigation():
    nav = set(_nav_pages())
    pages = {str(p.relative_to(DOCS)) for p in _pages()}
    assert pages - nav == set(), f"pages missing from mkdocs.yml's nav: {sorted(pages - nav)}"
    assert nav - pages - {str(p.relative_to(DOCS)) for p in DOCS.glob("tutorials/*.py")} == set()
    for tutorial in ("01_binary_ep", "02_local_rule_packed", "03_spiking_nir", "04_reproduce_compare"):
        assert f"tutorials/{tutorial}.py" in nav


def test_every_results_table_on_a_page_is_what_results_toml_renders():
    results = load_results(DOCS / "results.toml")
    for page in [*_pages(), ROOT / "README.md"]:
        text = page.read_text()
        if not marked_tables(text):
            continue
        assert render_markdown(text, results, str(page)) == text, (
            f"{page.relative_to(ROOT)}: a table differs from docs/results.toml; re-render it "
            "(`binlearn reproduce --write-docs` for docs/results.md, `python -m binlearn.reference_pages` "
            "for the other pages)")


def test_every_picture_names_its_machine_and_command():
    """Each picture on the site and the README has, within the paragraphs around it, a machine
    and the command that measured or drew it."""
    for page in [*_pages(), ROOT / "README.md"]:
        lines = page.read_text().splitlines()
        for number, line in enumerate(lines):
            for target in IMAGE.findall(line):
                around = "\n".join(lines[max(0, number - 12):number + 12])
                where = f"{page.relative_to(ROOT)}:{number + 1} ({target})"
                assert any(machine in around for machine in MACHINES), f"{where}: no machine named"
                assert COMMAND.search(around), f"{where}: no command named"


def test_the_readme_quotes_no_speed_or_size_figure():
    """Speeds and sizes depend on the machine: they live on the results page, with it, not in the
    README (issue 27)."""
    text = (ROOT / "README.md").read_text()
    found = PERFORMANCE.findall(text)
    assert not found, f"the README quotes {found}; give them on docs/results.md with their machine"
