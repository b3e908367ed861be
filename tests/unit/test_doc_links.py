"""Every relative link of the README and docs/ leads somewhere: the file exists and, when the link
names a section (``file.md#section``), the file has a heading of that name (as GitHub anchors it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation but - and _ dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    body = FENCE.sub("", path.read_text())
    return {anchor(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", body, re.MULTILINE)}


def links(path: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", path.read_text()))


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_lead_to_a_file_and_section_that_exist(doc):
    broken = []
    for target in links(doc):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file, _, section = target.partition("#")
        where = (doc.parent / file).resolve() if file else doc
        missing_section = bool(section) and where.suffix == ".md" and section not in anchors(where)
        if not where.exists() or missing_section:
            broken.append(target)
    assert broken == [], f"{doc.name}: broken links {broken}"


def test_the_anchor_rule_reads_headings_as_github_does():
    assert anchor("Reproducible installs") == "reproducible-installs"
    assert anchor("`option_chain` and `option_chain_at(as_of)`") == "option_chain-and-option_chain_atas_of"
    assert anchor("The analyst's side: pandas, export") == "the-analysts-side-pandas-export"
