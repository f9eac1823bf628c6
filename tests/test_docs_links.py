"""Every relative link of the README and docs/ pages leads to a file of the repository,
and every anchor to a heading of that file (GitHub's heading ids)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def github_slug(heading: str) -> str:
    """The id GitHub gives a heading: lowercase, punctuation dropped (letters, digits,
    spaces, ``-`` and ``_`` kept), spaces as ``-``.

    >>> github_slug("§4-§6 Analyses and charts")
    '4-6-analyses-and-charts'
    >>> github_slug("The paper's setting")
    'the-papers-setting'
    """
    text = heading.strip().lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def prose(text: str) -> str:
    """``text`` without its fenced code blocks (their lines blanked, so line numbers
    stay)."""
    out, fence = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fence = not fence
            out.append("")
            continue
        out.append("" if fence else line)
    return "\n".join(out)


def anchors(path: Path) -> set[str]:
    return {
        github_slug(m[1])
        for m in re.finditer(r"^#{1,6} (.+)$", prose(path.read_text(encoding="utf-8")), re.M)
    }


def links(page: Path) -> list[tuple[int, str]]:
    text = prose(page.read_text(encoding="utf-8"))
    return [
        (text[: m.start()].count("\n") + 1, m[1])
        for m in LINK.finditer(text)
        if not re.match(r"[a-z]+:", m[1])
    ]


def test_every_page_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    linked = {target.split("#")[0] for _, target in links(ROOT / "README.md")}
    missing = [p.name for p in PAGES[1:] if f"docs/{p.name}" not in linked]
    assert not missing, f"docs pages the README does not link: {missing}"
    assert "## Quick start" in readme


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    bad = []
    for line, target in links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(f"{page.name}:{line}: {target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{page.name}:{line}: {target}: no heading #{anchor} in {dest.name}")
    assert not bad, "\n".join(bad)


def test_citation_names_this_version_and_the_paper():
    import moemui

    cff = (ROOT / "CITATION.cff").read_text(encoding="utf-8")
    assert f'version: "{moemui.__version__}"' in cff
    assert "arXiv:2509.23933" in cff
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "arXiv:2509.23933" in readme and "## Cite" in readme
