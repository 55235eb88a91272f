"""Tests that the README and the docs/ pages link only to files and headings that exist."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _strip_code(text):
  """Removes fenced and indented code blocks and code spans that are not link text."""
  text = re.sub(r"```.*?```", "", text, flags=re.S)
  text = re.sub(r"^    .*$", "", text, flags=re.M)
  return re.sub(r"(?<!\[)`[^`\n]*`(?!\])", "", text)


def local_links(text):
  """Returns the link targets of a markdown text that are not web or mail addresses."""
  return [t for t in _LINK.findall(_strip_code(text))
          if not re.match(r"(https?|mailto):", t)]


def heading_anchors(text):
  """Returns GitHub's anchors of the headings of a markdown text."""
  anchors = set()
  for line in _strip_code(text).split("\n"):
    m = re.match(r"#+ (.*)", line)
    if m:
      title = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower())
      anchors.add(title.replace(" ", "-"))
  return anchors


def broken_links(page):
  """Returns the local links of a page whose file or heading does not exist."""
  broken = []
  for target in local_links(page.read_text()):
    path, _, anchor = target.partition("#")
    dest = (page.parent / path) if path else page
    if not dest.exists():
      broken.append(target)
    elif anchor and anchor not in heading_anchors(dest.read_text()):
      broken.append(target)
  return broken


def test_the_docs_pages_exist():
  names = {p.name for p in PAGES}
  assert {"README.md", "renderer.md", "training.md", "layout.md"} <= names, names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_local_links_resolve(page):
  assert broken_links(page) == [], f"{page}: links to missing files or headings"


def test_a_broken_link_or_anchor_is_found(tmp_path):
  (tmp_path / "a.md").write_text("# Title here\n")
  page = tmp_path / "b.md"
  page.write_text("[ok](a.md#title-here) [gone](nowhere.md) [bad](a.md#other) "
                  "`[code](skipped.md)` [web](https://example.com/x.md)\n")
  assert broken_links(page) == ["nowhere.md", "a.md#other"]
