"""Secrets only from the environment: resolved at run time, never echoed, literals refused by `check`."""

from __future__ import annotations

from pathlib import Path

import pytest

from foundation.core.workspace import scan_usecases
from foundation.specs.secrets import MissingSecretError, literal_secrets, references, resolve


def test_resolve_substitutes_from_the_environment() -> None:
    assert resolve("Bearer ${API_TOKEN}", "auth.token", {"API_TOKEN": "s3cr3t"}) == "Bearer s3cr3t"


def test_missing_variable_names_it_and_where() -> None:
    with pytest.raises(MissingSecretError) as caught:
        resolve("${WORKSHOP_TOKEN}", "extract.auth.token", {})
    assert str(caught.value) == (
        "environment variable WORKSHOP_TOKEN is not set (referenced by extract.auth.token); export it before running"
    )


def test_literal_secrets_found_references_allowed() -> None:
    data = {"extract": {"auth": {"token": "abc123", "password": "${DB_PASSWORD}"}, "api_key": "k"}}
    assert sorted(literal_secrets(data)) == [("extract", "api_key"), ("extract", "auth", "token")]
    assert references(data) == {"DB_PASSWORD"}


def test_check_refuses_a_literal_secret_without_printing_it(tmp_path: Path) -> None:
    sources = tmp_path / "usecases" / "uc" / "sources"
    sources.mkdir(parents=True)
    (sources / "s.yaml").write_text(
        "name: s\ndescription: a source with a secret\nowner: a@b.co\nschedule: manual\n"
        "extract: {type: csv, path: x.csv}\ntoken: hunter2-very-secret\n"
    )
    errors = [e for e in scan_usecases(tmp_path).errors if e.field == "token"]
    texts = [e.format() for e in errors]
    assert any("a secret written in the YAML" in t and ":6:" in t for t in texts)
    assert not any("hunter2" in t for t in texts)
