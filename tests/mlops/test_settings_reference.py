"""docs/settings.md is the settings class described, whole: every field, its variable, type,
default and description; `current` shows values and sources with secrets masked."""

from __future__ import annotations

import pytest

from mlops.settings import Settings
from mlops.settings_reference import MASK, OTHER, current, markdown, settings
from tests import layout

SETTINGS_PAGE = layout.ROOT / "docs" / "settings.md"


def test_docs_settings_md_is_what_the_generator_gives() -> None:
    assert SETTINGS_PAGE.read_text(encoding="utf-8") == markdown(), (
        "docs/settings.md is out of date: run `make settings-doc`"
    )


def test_every_setting_has_a_description_and_a_group() -> None:
    rows = settings()
    assert len(rows) == len(Settings.model_fields)
    undescribed = [row.variable for row in rows if not row.description.strip()]
    assert not undescribed, f"settings without a description: {undescribed}"
    ungrouped = [row.variable for row in rows if row.group == OTHER]
    assert not ungrouped, f"add these to a group of mlops.settings_reference.GROUPS: {ungrouped}"


def test_the_reference_names_every_variable_once() -> None:
    page = markdown()
    for row in settings():
        assert page.count(f"| `{row.variable}` |") == 1, row.variable
    assert "| `MLFLOW_TRACKING_URI` |" in page  # the tool's own name, not MLOPS_...
    assert "| `MLOPS_SEED` | integer | `42` |" in page
    assert "| `MLOPS_CANARY_SHARE` | number ≥ 0, ≤ 1 | `0.1` |" in page
    assert "local-admin-token" not in page


def test_current_values_say_where_they_came_from_and_mask_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLOPS_SEED", "7")
    monkeypatch.setenv("MLOPS_ADMIN_TOKEN", "s3cret-of-our-own")
    monkeypatch.setenv("MLOPS_STACK_POSTGRES_URL", "postgresql+psycopg://me:pa55@db:5432")
    rows = {row.setting.variable: row for row in current(Settings())}
    assert (rows["MLOPS_SEED"].value, rows["MLOPS_SEED"].source) == ("7", "environment")
    assert (rows["MLOPS_API_PORT"].value, rows["MLOPS_API_PORT"].source) == ("8000", "default")
    assert rows["MLOPS_ADMIN_TOKEN"].value == MASK
    assert rows["MLOPS_STACK_POSTGRES_URL"].value == f"postgresql+psycopg://me:{MASK}@db:5432"
    # An unset URL shows the one derived from MLOPS_HOME.
    assert rows["MLFLOW_TRACKING_URI"].value.startswith("unset: sqlite:///")
    assert not any("s3cret" in row.value or "pa55" in row.value for row in rows.values())
