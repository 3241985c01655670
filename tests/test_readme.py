"""README.md stays short, starts with the two commands, links to existing docs pages, and its result tables are
the ones ``benchmarks/readme_tables.py`` renders from ``benchmarks/results/*.json``.

Reads text and JSON only (no torch): ``pytest -q tests/test_readme.py --noconftest`` runs it alone.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_LINES = 250
HEADLINE_TABLES = ("default_model", "tokenizer", "serving")
LINK = re.compile(r"\]\(([^)\s#]+\.md)(?:#[^)\s]*)?\)")


def _readme_tables():
    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "benchmarks" / "readme_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _readme() -> str:
    return README.read_text(encoding="utf-8")


def test_generated_tables_match_the_results_files():
    tables = _readme_tables()
    text = _readme()
    names = [m.group("name") for m in tables.BLOCK.finditer(text)]
    for name in HEADLINE_TABLES:
        assert name in names, f"README.md has no <!-- results:{name} --> table"
    for page in tables.pages():
        body = page.read_text(encoding="utf-8")
        for name in (m.group("name") for m in tables.BLOCK.finditer(body)):
            assert (tables.RESULTS / f"{name}.json").is_file(), f"{page.name} shows a table of missing {name}.json"
        assert tables.update(body) == body, f"{page.name} tables are stale: run python benchmarks/readme_tables.py"


def test_readme_is_short():
    lines = len(_readme().splitlines())
    assert lines <= MAX_LINES, f"README.md has {lines} lines (at most {MAX_LINES}): move detail to docs/"


def test_readme_starts_with_the_two_commands():
    lines = _readme().splitlines()
    assert lines[0].startswith("# ") and lines[1] == ""
    assert lines[2] == "```bash"
    assert lines[3].startswith("make demo ")
    assert lines[4].startswith("make test ")
    assert lines[5] == "```"


def test_docs_links_in_readme_exist():
    links = [m.group(1) for m in LINK.finditer(_readme())]
    docs = [link for link in links if link.startswith("docs/")]
    assert docs, "README.md links to no docs/ page"
    missing = [link for link in docs if not (ROOT / link).is_file()]
    assert not missing, f"README.md links to missing pages: {missing}"


def test_every_docs_page_is_linked_from_readme_and_its_links_exist():
    text = _readme()
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"](docs/{page.name})" in text or f"](docs/{page.name}#" in text, f"README.md never links {page.name}"
        for link in LINK.findall(page.read_text(encoding="utf-8")):
            if "://" not in link:
                assert (page.parent / link).resolve().is_file(), f"{page.name} links to missing {link}"


def test_a_table_says_when_its_figures_were_measured_on_uncommitted_code(tmp_path):
    row = {"name": "x", "value": 1.0, "unit": "s", "goal": 2.0, "higher_is_better": False}
    (tmp_path / "t.json").write_text(json.dumps({"machine": "m", "threads": 1, "results": [
        {**row, "commit": "a" * 40 + "-dirty"}, {**row, "name": "y", "commit": "b" * 40}]}))
    table = _readme_tables().render("t", tmp_path)
    assert f"commit {'a' * 12}-dirty, {'b' * 12})" in table


def test_a_marked_table_can_pick_rows_by_pattern(tmp_path):
    names = ("mod_a", "dense", "mod_b")
    rows = [{"name": n, "value": 1.0, "unit": "x", "goal": None, "commit": "c" * 40} for n in names]
    (tmp_path / "t.json").write_text(json.dumps({"machine": "m", "threads": 1, "results": rows}))
    page = _readme_tables().update("<!-- results:t mod_* -->\nold\n<!-- /results -->\n", tmp_path)
    assert "`mod_a`" in page and "`mod_b`" in page and "`dense`" not in page and "old" not in page
