"""README and docs tables generated from ``benchmarks/results/*.json``: the JSON files are the one source of every
figure.

README.md and the docs pages mark each generated table with ``<!-- results:NAME -->`` ... ``<!-- /results -->``;
``NAME`` is a results file and the table lists the rows :data:`TABLES` picks from it (every row with a goal, when
no pick is given), with their value, unit, goal and commit. ``<!-- results:NAME PATTERN ... -->`` lists instead the
rows whose name matches one of the shell-style patterns (``mod_*``), in file order.

    python benchmarks/readme_tables.py          # rewrite the tables in README.md and docs/*.md
    python benchmarks/readme_tables.py --check  # exit 1 when a page and the JSON files disagree (a test runs this)
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
BLOCK = re.compile(r"(<!-- results:(?P<name>[\w-]+)(?P<pick>(?: [\w*?-]+)*) -->\n)(?P<body>.*?)(<!-- /results -->)",
                   re.DOTALL)

# rows shown per results file (None: every row that has a goal)
TABLES: dict[str, list[str] | None] = {
    "default_model": None,
    "tokenizer": None,
    "generation": None,
    "long_video": None,
    "moe": None,
    "attention": None,
    "data": None,
    "evaluation": None,
    "serving": None,
    "understanding": None,
}


def _number(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return str(value)  # also NaN / inf (json reads them), which int() below would raise on
    magnitude = abs(value)
    if magnitude >= 1000 or value == int(value) and magnitude >= 10:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if magnitude < 0.01 else f"{value:.3f}".rstrip("0").rstrip(".")


def _goal(row: dict[str, Any]) -> str:
    goal = row.get("goal")
    if goal is None:
        return "–"
    if row.get("tolerance") is not None:
        return f"{_number(goal)} ± {_number(row['tolerance'])}"
    return f"{'≥' if row.get('higher_is_better', True) else '≤'} {_number(goal)}"


def _met(row: dict[str, Any]) -> str:
    goal, value = row.get("goal"), row.get("value")
    if goal is None or not isinstance(value, int | float):
        return ""
    if row.get("tolerance") is not None:
        ok = abs(value - goal) <= row["tolerance"]
    else:
        ok = value >= goal if row.get("higher_is_better", True) else value <= goal
    return "met" if ok else "**missed**"


def _short_commit(commit: str) -> str:
    """The first 12 hex digits, keeping ``-dirty`` (figures measured on uncommitted code must say so)."""
    head, dirty, _ = commit.partition("-dirty")
    return head[:12] + (dirty and "-dirty")


def render(name: str, results_dir: Path = RESULTS, patterns: list[str] | None = None) -> str:
    """The markdown table of results file ``name``: the rows matching ``patterns``, else those :data:`TABLES`
    picks."""
    path = results_dir / f"{name}.json"
    if not path.is_file():
        return f"_no results yet: run `python benchmarks/{name}.py`_\n"
    data = json.loads(path.read_text(encoding="utf-8"))
    pick = TABLES.get(name)
    by_name = {row["name"]: row for row in data.get("results", [])}
    if patterns:
        rows = [r for r in by_name.values() if any(fnmatch.fnmatchcase(r["name"], p) for p in patterns)]
    elif pick:
        rows = [by_name[n] for n in pick if n in by_name]
    else:
        rows = [r for r in by_name.values() if r.get("goal") is not None]
    commits = {_short_commit(str(r.get("commit", data.get("commit", "not recorded")))) for r in rows}
    lines = [f"`benchmarks/results/{name}.json` ({data.get('machine', 'machine not recorded')}; "
             f"threads: {data.get('threads', '?')}; commit {', '.join(sorted(commits)) or 'n/a'})", "",
             "| measure | value | unit | goal | |", "|---|---|---|---|---|"]
    lines += [f"| `{r['name']}` | {_number(r.get('value'))} | {r.get('unit', '')} | {_goal(r)} | {_met(r)} |"
              for r in rows]
    return "\n".join(lines) + "\n"


def update(text: str, results_dir: Path = RESULTS) -> str:
    """``text`` with every marked block replaced by its rendered table."""
    return BLOCK.sub(lambda m: m.group(1) + render(m.group("name"), results_dir, m.group("pick").split())
                     + m.group(5), text)


def pages() -> list[Path]:
    """The pages whose marked tables this script writes: README.md and every docs page."""
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def main(argv: list[str] | None = None) -> int:
    """Rewrite the pages' tables, or with ``--check`` report whether they are current."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a page's tables are out of date")
    args = parser.parse_args(argv)
    stale = []
    for page in pages():
        text = page.read_text(encoding="utf-8")
        new = update(text)
        if new == text:
            continue
        stale.append(page.relative_to(ROOT).as_posix())
        if not args.check:
            from worldmodel.io import write_text_atomic

            write_text_atomic(page, new)
    if args.check and stale:
        print(f"tables in {', '.join(stale)} differ from benchmarks/results/*.json: run python "
              "benchmarks/readme_tables.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
