"""The front door cannot rot: README limits, generated references, runnable examples."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import docgen  # noqa: E402

MARK = "<!-- runnable -->"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def runnable_blocks() -> list[tuple[str, str, str]]:
    """``(where, language, code)`` of every fenced block right after a ``<!-- runnable -->`` line."""
    found, seen = [], set()
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(re.escape(MARK) + r"\n```(\w+)\n(.*?)```", text, re.S):
            if m.group(2) not in seen:
                seen.add(m.group(2))
                found.append((f"{path.relative_to(ROOT)}:{text[:m.start()].count(chr(10)) + 1}", m.group(1),
                              m.group(2)))
    return found


def test_readme_is_a_front_door():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.encode()) <= 12 * 1024
    head = text.splitlines()[:80]
    assert any(line.startswith("lmworks train examples/") for line in head)
    assert any(line.startswith("lmworks predict ") for line in head)
    # the two set-up commands, and .ci/run calls the same test command
    assert "bash scripts/quickstart.sh" in text and "bash scripts/test.sh" in text
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
    for name in ("LICENSE", "CHANGELOG.md", "CONTRIBUTING.md"):
        assert (ROOT / name).is_file()
    assert "Apache License" in (ROOT / "LICENSE").read_text()


def test_results_page_holds_current_tables_only():
    page = ROOT / "docs" / "benchmarks.md"
    assert len(page.read_text(encoding="utf-8").encode()) <= 25 * 1024
    for name, result in docgen.all_results():
        assert f"<!-- results {name} -->" in page.read_text(encoding="utf-8")
        for key in ("what", "command", "date", "machine", "baseline", "columns", "rows"):
            assert result.get(key), f"{name}.json lacks {key}"
        assert all(len(row) == len(result["columns"]) for row in result["rows"]), name
        rendered = docgen.results_table(name)
        assert result["date"] in rendered and result["baseline"] in rendered
    assert (ROOT / "docs" / "research-log" / "benchmarks-history.md").is_file()


def test_generated_references_are_current():
    """CLI reference, REST reference and README results match the code and docs/results."""
    stale = [p.relative_to(ROOT) for p, text in docgen.generated().items() if p.read_text(encoding="utf-8") != text]
    assert stale == [], "run: python scripts/docgen.py --write"


def test_cli_reference_names_every_option():
    from lmworks.cli import build_parser, walk_parsers

    page = (ROOT / "docs" / "reference" / "cli.md").read_text(encoding="utf-8")
    for parser in walk_parsers(build_parser()):
        for action in parser._actions:
            for flag in action.option_strings:
                if action.help != "==SUPPRESS==":
                    assert f"`{flag}`" in page, f"{parser.prog} {flag}"


def test_pages_show_their_pictures():
    for guide, picture in [("monitor", "monitor-dashboard.png"), ("assistant", "assistant-chat.png"),
                           ("advisor", "advisor-report.png"), ("multimodal", "multimodal-accuracy.png"),
                           ("recommend", "recommend-ndcg.png"), ("explain", "explain-report.png"),
                           ("explain", "monitor-why.png"), ("label", "label-page.png")]:
        assert f"../images/{picture}" in (ROOT / "docs" / "guides" / f"{guide}.md").read_text(encoding="utf-8")
        assert (ROOT / "docs" / "images" / picture).stat().st_size > 10_000


@pytest.mark.parametrize(("where", "language", "code"), runnable_blocks(), ids=lambda v: str(v)[:40])
def test_runnable_examples_run_as_printed(where, language, code, tmp_path):
    """Each marked block runs as printed, from a folder holding the shipped examples."""
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if language == "python":
        done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, f"{where}\n{done.stderr[-3000:]}"
        return
    assert language == "bash"
    for line in code.strip().splitlines():
        line = line.split("  #")[0].strip()
        if not line or line.startswith("#"):
            continue
        argv = shlex.split(line)
        assert argv[0] == "lmworks", f"{where}: only lmworks commands are run here: {line}"
        done = subprocess.run([sys.executable, "-m", "lmworks", *argv[1:]], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{where}: {line}\n{done.stderr[-3000:]}"
