"""Every repository path and module the docs name exists, so the docs follow the code.

The docs are README.md, docs/**/*.md and infra/README.md. Two kinds of names are checked,
each where it is written in backticks (an inline code span, or a word of one):

- a path: a word with a slash whose first part is a top-level folder of the repository
  (`serving/routes/scoring.py`, `tests/stack/`, `infra/Dockerfile`); for a README inside
  a folder, a folder of that folder too (infra/README.md's `k8s/base/`). A glob must match
  something; `path::name` must also define `name` (a test, a fixture, a class). A word
  with a placeholder (`pipelines/<name>_flow.py`) is a pattern, not a path: not checked.
- a module: a dotted name that starts with a package of the platform
  (`training.registration.register_winner`, `pipelines.fraud_flow:fraud_pipeline`): the
  longest prefix that is a module must exist, and the next name must be defined in it.

The pytest commands of the docs' fenced blocks are checked like paths too.
"""

from __future__ import annotations

import ast
import re
import shlex
from functools import cache
from pathlib import Path

import pytest

from tests import layout

ROOT = layout.ROOT
DOCS = (
    ROOT / "README.md",
    *sorted((ROOT / "docs").rglob("*.md")),
    ROOT / "infra" / "README.md",
)
PACKAGES = frozenset(layout.import_linter_config()["root_packages"])
# Inline code spans, which may wrap onto the next line (fenced blocks are taken out first).
CODE_SPAN = re.compile(r"(?<!`)`([^`]+)`(?!`)")
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
DOTTED = re.compile(r"^[A-Za-z_]\w*(?:[.:][A-Za-z_]\w*)+")
PLACEHOLDER = re.compile(r"<[^>]*>|\$|\{")
# Words in backticks that look like a path or a module of the repository but name
# something else, with what they name.
NOT_PATHS = {
    "monitoring/reference.parquet": "an artifact of a winner's MLflow run (mlops.reference)",
}
NOT_MODULES = {
    "serving.access": "the name of the API's access logger (logging.getLogger)",
}


def made_when_run() -> frozenset[str]:
    """The top-level folders the project makes when it runs, which git ignores (`/var/`)."""
    lines = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip("/") for line in lines if re.fullmatch(r"/[^/*]+/", line))


def top_folders(base: Path) -> frozenset[str]:
    """The folders directly under `base` that are part of the repository, hidden ones
    included (`.github/`, `.ci/`)."""
    skipped = made_when_run() | {".git"}
    return frozenset(p.name for p in base.iterdir() if p.is_dir() and p.name not in skipped)


def code_spans(text: str) -> list[str]:
    """The inline code spans of a Markdown text, fenced blocks left out."""
    return [s for s in CODE_SPAN.findall(FENCE.sub("", text)) if "\n\n" not in s]


def words(span: str) -> list[str]:
    """The words of a code span, as a shell would split them (quotes kept together)."""
    try:
        return shlex.split(span)
    except ValueError:  # an unbalanced quote: not a command, take it by spaces
        return span.split()


def path_words(doc: Path) -> list[str]:
    """The words of `doc`'s code spans (and its pytest commands) that name a path."""
    text = doc.read_text(encoding="utf-8")
    candidates = [w for span in code_spans(text) for w in words(span)]
    for block in FENCE.findall(text):
        for line in block.splitlines():
            command = words(line.split(" #")[0])
            if command and command[0].endswith("pytest"):
                candidates += [w for w in command[1:] if not w.startswith("-")]
    bases = {ROOT} | ({doc.parent} if doc.parent != ROOT else set())
    folders = set().union(*(top_folders(base) for base in bases))
    found = [word.lstrip("(").rstrip(".,;:)") for word in candidates]
    return [
        word
        for word in found
        if "/" in word
        and word.split("/")[0] in folders
        and not PLACEHOLDER.search(word)
        and word not in NOT_PATHS
    ]


@cache
def defined_names(path: Path) -> frozenset[str]:
    """Names a Python file defines at its top level or in a class (tests, fixtures,
    functions, classes, assignments, imports)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return frozenset(names)


def missing_path(word: str, base: Path) -> str | None:
    """Why `word` names nothing under `base`, or None when it does."""
    path, _, name = word.partition("::")
    if any(c in path for c in "*?["):
        return None if any(base.glob(path)) else "no file matches"
    target = base / path
    if not target.exists():
        return "no such file or folder"
    if name and name.split("::")[-1].split("[")[0] not in defined_names(target):
        return f"{path} defines no {name}"
    return None


def module_words(doc: Path) -> list[str]:
    """The dotted names of `doc`'s code spans that start with a package of the platform."""
    found = []
    for span in code_spans(doc.read_text(encoding="utf-8")):
        for word in words(span):
            match = DOTTED.match(word)
            if match and match.group().split(".")[0].split(":")[0] in PACKAGES:
                found.append(match.group())
    return [w for w in found if w not in NOT_MODULES]


def missing_module(dotted: str) -> str | None:
    """Why `dotted` names no module (and name in it) of the repository, or None."""
    parts = re.split(r"[.:]", dotted)
    for cut in range(len(parts), 0, -1):
        folder = ROOT.joinpath(*parts[:cut])
        module = folder.with_suffix(".py")
        if module.is_file() or (folder / "__init__.py").is_file():
            source = module if module.is_file() else folder / "__init__.py"
            rest = parts[cut:]
            if rest and rest[0] not in defined_names(source):
                return f"{'.'.join(parts[:cut])} defines no {rest[0]}"
            return None
    return "no such module"


def relative(doc: Path) -> str:
    return str(doc.relative_to(ROOT))


@pytest.mark.parametrize("doc", DOCS, ids=relative)
def test_every_path_the_doc_names_exists(doc: Path) -> None:
    bases = [doc.parent, ROOT] if doc.parent != ROOT else [ROOT]
    wrong = {}
    for word in path_words(doc):
        reasons = [missing_path(word, base) for base in bases]
        if all(reasons):
            wrong[word] = reasons[-1]
    assert not wrong, f"{relative(doc)} names paths that do not exist: {wrong}"


@pytest.mark.parametrize("doc", DOCS, ids=relative)
def test_every_module_the_doc_names_exists(doc: Path) -> None:
    wrong = {word: why for word in module_words(doc) if (why := missing_module(word))}
    assert not wrong, f"{relative(doc)} names modules that do not exist: {wrong}"


def test_the_check_sees_the_paths_and_modules_of_the_docs() -> None:
    # A pattern that matched nothing would pass every doc: make sure it finds them.
    readme = ROOT / "README.md"
    assert "mlops/settings.py" in path_words(readme)
    assert len(path_words(ROOT / "docs" / "architecture.md")) > 50
    assert any(w.startswith("tests/") for w in path_words(readme))
    assert len(module_words(ROOT / "docs" / "architecture.md")) > 5
    assert missing_path("serving/nowhere.py", ROOT) == "no such file or folder"
    assert missing_path("tests/conftest.py::fraud_run", ROOT) is None
    assert missing_path("tests/conftest.py::no_such_fixture", ROOT) is not None
    assert missing_path("docs/case-studies/*.md", ROOT) is None
    assert missing_module("serving.nowhere") is not None
    assert missing_module("training.registration.nothing_here") is not None
