"""Rules about the shape of the code, checked like any behaviour.

The import-linter contracts (layers, a core that never imports an application, no
cycles) live in ``pyproject.toml``; ``scripts/test.sh`` runs them, and the test here
shows they catch a bad import. The rest is read from the source with ``ast``.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "lmworks"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
#: A function may be longer when its first lines say why, in a comment starting with this.
LONG_MARKER = "# long:"


def modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_no_module_over_400_lines():
    long = {str(p.relative_to(SRC)): n for p in modules() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"split these modules: {long}"


def test_no_function_over_60_lines_without_a_stated_reason():
    offenders = []
    for path in modules():
        source = path.read_text()
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                head = "\n".join(lines[node.lineno - 1: node.lineno + 4])
                if length > MAX_FUNCTION_LINES and LONG_MARKER not in head:
                    offenders.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({length} lines)")
    assert not offenders, offenders


def _resolve(path: Path, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    package = path.relative_to(SRC.parent).with_suffix("").parts[:-1]
    if path.name == "__init__.py":
        package = path.relative_to(SRC.parent).parts[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def test_no_private_name_is_imported_across_modules():
    offenders = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            target = _resolve(path, node)
            if not target.startswith("lmworks"):
                continue
            if any(part.startswith("_") and not part.startswith("__") for part in target.split(".")):
                offenders.append(f"{path.relative_to(SRC)} imports from private module {target}")
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    offenders.append(f"{path.relative_to(SRC)} imports {target}.{alias.name}")
    assert not offenders, offenders


@pytest.fixture(scope="module")
def lint_imports() -> str:
    found = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(found).exists():
        pytest.skip("import-linter is not installed (pip install 'lmworks[dev]')")
    return found


def test_architecture_contracts_hold(lint_imports):
    proc = subprocess.run([lint_imports], cwd=SRC.parents[1], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "3 kept, 0 broken" in proc.stdout


@pytest.mark.parametrize("module, bad_import, broken", [
    ("classifier.py", "from .cli import main  # noqa", "The core never imports"),
    ("data.py", "from .classifier import TextClassifier  # noqa", "Layers"),
    ("heads.py", "from .embed import SentenceEncoder  # noqa", "No import cycles"),
])
def test_a_bad_import_breaks_a_contract_and_names_it(lint_imports, tmp_path, module, bad_import, broken):
    copy = tmp_path / "src" / "lmworks"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(SRC.parents[1] / "pyproject.toml", tmp_path / "pyproject.toml")
    target = copy / module
    target.write_text(target.read_text() + f"\n{bad_import}\n")
    env = {"PYTHONPATH": str(tmp_path / "src"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([lint_imports, "--no-cache"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode != 0
    assert f"{broken}" in proc.stdout and "BROKEN" in proc.stdout
    assert f"lmworks.{module[:-3]}" in proc.stdout  # the offending importer is named


def test_every_public_name_resolves():
    import lmworks
    from lmworks.fusion import MultimodalClassifier

    assert all(getattr(lmworks, name) is not None for name in lmworks.__all__)
    assert lmworks.MultimodalClassifier is MultimodalClassifier  # exported, imported only when asked for
