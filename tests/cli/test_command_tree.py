"""The `mlops` command tree is the one snapshotted before the packages were reorganised.

Every command's `--help` must equal its snapshot, but for the deliberate changes listed
here: renames (one name per concept). A group's help is compared by the commands it
lists, as (name, description) rows: a rename re-aligns the whole table.

Commands added since were written into the snapshot on purpose, with the help of the
groups that list them (the root, `ui`): `mlops config`, `mlops screenshots`, `mlops ui
mlflow`, `mlops ui prefect`, `mlops evaluate` (fraud, fraud-features, churn), `mlops stream fraud`,
`mlops bench stream` (and `simulate traffic --to`), `mlops stack traffic` (and `stack
bootstrap --pages`), `mlops stack panels`, and the root's --version, --install-completion
and --show-completion.
"""

from __future__ import annotations

import re

from cli.main import app
from tests.snapshots.behaviour import compare_or_update, help_texts

# The CI quality bar was `mlops gate`, a word the promotion gate and the challenger test
# also used.
RENAMED = {"gate": "quality-bar"}
# Help texts edited on purpose: (command path, before, after). `score_fraud_file` and
# `score_churn_file` became one batch pipeline; the help named the functions.
EDITED = [
    (
        "bench",
        "then score_fraud_file and score_churn_file.",
        "then scoring the fraud and churn files.",
    ),
    (
        "bench batch",
        "then score_fraud_file and score_churn_file.",
        "then scoring the fraud and churn files.",
    ),
    # The synthetic frames read features 0, 2 and 4: fewer than five was an IndexError.
    ("bench monitoring", "[x>=2]", "[x>=5]"),
]
_ROW = re.compile(r"^│ (\S+)\s+(.*?)\s*│$")


def _renamed(path: str) -> str:
    words = path.split()
    return " ".join(RENAMED.get(word, word) if i == 0 else word for i, word in enumerate(words))


def _rows(text: str) -> set[tuple[str, str]]:
    """The (name, description) rows of a group's Commands panel."""
    panel = text.split("Commands ─", 1)[1]
    rows = set()
    for line in panel.splitlines():
        found = _ROW.match(line.strip())
        if found:
            rows.add((RENAMED.get(found[1], found[1]), found[2]))
    return rows


def test_every_command_and_option_is_as_snapshotted() -> None:
    current = help_texts(app)
    snapshot = {
        _renamed(path): text for path, text in compare_or_update("command_tree", None).items()
    }
    assert sorted(current) == sorted(snapshot)
    for path, before, after in EDITED:
        assert before in snapshot[path], f"`mlops {path}`: no {before!r} to edit"
        snapshot[path] = snapshot[path].replace(before, after)
    for path, text in snapshot.items():
        for old, new in RENAMED.items():
            text = text.replace(f"Usage: mlops {old} ", f"Usage: mlops {new} ")
        if "Commands ─" in text:
            assert _rows(current[path]) == _rows(text), f"`mlops {path}` lists other commands"
            before, after = current[path].split("Commands ─")[0], text.split("Commands ─")[0]
            assert before == after, f"`mlops {path} --help` changed"
        else:
            assert current[path] == text, f"`mlops {path} --help` changed"
