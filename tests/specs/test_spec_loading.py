"""One loader and one set of field validators for every YAML kind: the same mistake reads the same in every file."""

from __future__ import annotations

from pathlib import Path

from foundation.core.workspace import (
    KPIS_DIR,
    ML_DIR,
    SOURCES_DIR,
    declaration_files,
    load_kpis,
    load_model_specs,
    scan_usecases,
)
from foundation.specs.loading import SpecKind, read_specs
from foundation.specs.source import SourceSpec

SOURCE = (
    "name: {name}\ndescription: sensor readings\nowner: {owner}\nschedule: manual\n"
    "extract: {{type: csv, path: r.csv}}\n"
)
KPI = (
    "id: {name}\nlabel: Readings\ndescription: How many readings\nowner: {owner}\nunit: n\ndirection: higher\n"
    "model: readings\ntime: day\nexpression: count(*)\n"
)
MODEL = """name: {name}
description: Will it fail within a week
owner: {owner}
feature_table: features
entity: [truck_id]
time: day
target: failed
baseline: {{rule: km > 1000}}
candidates: [{{name: rf, estimator: random_forest}}]
"""


def write(root: Path, folder: str, file: str, text: str, usecase: str = "plant") -> Path:
    path = root / "usecases" / usecase / folder / file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _messages(errors, field: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [e.message for e in errors if e.field == field and e.severity == "error"]


def test_a_bad_name_reads_the_same_in_sources_kpis_and_models(tmp_path: Path) -> None:
    write(tmp_path, SOURCES_DIR, "s.yaml", SOURCE.format(name="Bad Name", owner="a@b.co"))
    write(tmp_path, KPIS_DIR, "k.yaml", KPI.format(name="Bad Name", owner="a@b.co"))
    write(tmp_path, ML_DIR, "m.yaml", MODEL.format(name="Bad Name", owner="a@b.co"))
    source = _messages(scan_usecases(tmp_path).errors, "name")
    assert source == [
        "'Bad Name' is not a valid name: use lower_snake_case (a letter, then letters, digits or underscores, "
        "at most 63 characters), so it is safe as a table, column and folder name"
    ]
    assert _messages(load_kpis(tmp_path).errors, "id") == source
    assert _messages(load_model_specs(tmp_path).errors, "name") == source


def test_a_bad_owner_reads_the_same_in_sources_kpis_and_models(tmp_path: Path) -> None:
    write(tmp_path, SOURCES_DIR, "s.yaml", SOURCE.format(name="s", owner="nobody"))
    write(tmp_path, KPIS_DIR, "k.yaml", KPI.format(name="k", owner="nobody"))
    write(tmp_path, ML_DIR, "m.yaml", MODEL.format(name="m", owner="nobody"))
    source = _messages(scan_usecases(tmp_path).errors, "owner")
    assert source == ["'nobody' is not an e-mail address: the owner is a person or team mailbox"]
    assert _messages(load_kpis(tmp_path).errors, "owner") == source
    assert _messages(load_model_specs(tmp_path).errors, "owner") == source


def test_each_kind_points_its_hint_at_its_own_reference_page(tmp_path: Path) -> None:
    write(
        tmp_path,
        SOURCES_DIR,
        "s.yaml",
        SOURCE.format(name="s", owner="a@b.co")
        .replace("schedule: manual\n", "")
        .replace("description: sensor readings\n", ""),
    )
    write(tmp_path, KPIS_DIR, "k.yaml", KPI.format(name="k", owner="a@b.co").replace("unit: n\n", ""))
    write(tmp_path, ML_DIR, "m.yaml", MODEL.format(name="m", owner="a@b.co").replace("target: failed\n", ""))
    (tmp_path / "usecases" / "plant" / "usecase.yaml").write_text("title: Plant\ndescription: Sensors of the plant\n")
    (usecase,) = [e for e in scan_usecases(tmp_path).errors if e.field == "owner"]
    (source,) = [e for e in scan_usecases(tmp_path).errors if e.field == "description"]
    (kpi,) = load_kpis(tmp_path).errors
    (model,) = load_model_specs(tmp_path).errors
    assert (usecase.hint, source.hint, kpi.hint, model.hint) == (
        "add `owner:` (see docs/usecases.md)",
        "add `description:` (see docs/sources.md)",
        "add `unit:` (see docs/kpis.md)",
        "add `target:` (see docs/mlops.md)",
    )
    assert (kpi.line, model.line) == (1, 1)


def test_a_name_declared_twice_in_a_use_case_is_named_with_its_kind(tmp_path: Path) -> None:
    first = write(tmp_path, ML_DIR, "a.yaml", MODEL.format(name="risk", owner="a@b.co"))
    second = write(tmp_path, ML_DIR, "b.yaml", MODEL.format(name="risk", owner="a@b.co"))
    write(tmp_path, ML_DIR, "c.yaml", MODEL.format(name="risk", owner="a@b.co"), usecase="other")
    scan = load_model_specs(tmp_path)
    assert [m.key for m in scan.models] == ["other/risk", "plant/risk"]
    (error,) = scan.errors
    assert error.format() == (
        f"{second}:1: name: model 'risk' is already declared in {first.name} "
        "(hint: model names are unique within a use case)"
    )


def test_the_loader_reports_syntax_errors_and_extra_refusals_per_file(tmp_path: Path) -> None:
    good = write(tmp_path, SOURCES_DIR, "a.yaml", SOURCE.format(name="a", owner="a@b.co"))
    broken = write(tmp_path, SOURCES_DIR, "b.yaml", "name: [unclosed\n")
    files = declaration_files(tmp_path, SOURCES_DIR)
    assert files == [("plant", good), ("plant", broken)]
    seen: list[Path] = []

    def refuse(doc):  # type: ignore[no-untyped-def]
        seen.append(doc.path)
        return []

    declared, errors = read_specs(files, SpecKind(SourceSpec, "source", "docs/sources.md"), refuse=refuse)
    assert [d.spec.name for d in declared] == ["a"]
    assert seen == [good]  # a file that does not parse is not validated
    (error,) = errors
    assert error.path == broken and error.message.startswith("YAML syntax error")


def test_hidden_and_private_folders_are_not_use_cases(tmp_path: Path) -> None:
    write(tmp_path, KPIS_DIR, "k.yaml", KPI.format(name="k", owner="a@b.co"))
    write(tmp_path, KPIS_DIR, "k.yaml", KPI.format(name="k2", owner="a@b.co"), usecase="_drafts")
    write(tmp_path, KPIS_DIR, "k.yaml", KPI.format(name="k3", owner="a@b.co"), usecase=".git")
    assert [k.spec.id for k in load_kpis(tmp_path).kpis] == ["k"]
