"""The `mlops` command tree is the one snapshotted before the packages were reorganised."""

from __future__ import annotations

from cli.main import app
from tests.snapshots.behaviour import compare_or_update, help_texts


def test_every_command_and_option_is_as_snapshotted() -> None:
    current = help_texts(app)
    snapshot = compare_or_update("command_tree", current)
    assert sorted(current) == sorted(snapshot)
    for path, text in snapshot.items():
        assert current[path] == text, f"`mlops {path} --help` changed"
