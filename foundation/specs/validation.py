"""Turn pydantic validation errors into `file:line: field: message (hint)` errors.

Pure functions over a parsed YAML document: no workspace I/O here.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from foundation.specs.errors import SpecError
from foundation.specs.rules import ALL_RULE_KEYS, Rule
from foundation.specs.yaml_source import YamlDocument

M = TypeVar("M", bound=BaseModel)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Every pydantic model class reachable in a type annotation (through list, Optional, Union, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    origin = typing.get_origin(annotation)
    if origin is not None or isinstance(annotation, types.UnionType):
        for arg in typing.get_args(annotation):
            found.extend(_models_in(arg))
    return found


def _keys(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def _tag_of(model: type[BaseModel]) -> tuple[str, ...]:
    field = model.model_fields.get("type")
    return typing.get_args(field.annotation) if field is not None else ()


def allowed_keys(root: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """Keys valid in the mapping at `loc` (an error location whose last part is the offending key)."""
    candidates = [root]
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        tagged = [m for m in candidates if part in _tag_of(m) or (_rule_tags(m) and part in m.model_fields)]
        if tagged:  # a discriminated-union tag inside the location
            candidates = tagged
            continue
        next_candidates: list[type[BaseModel]] = []
        for model in candidates:
            for name, field in model.model_fields.items():
                if part in (name, field.alias):
                    next_candidates.extend(_models_in(field.annotation))
        if not next_candidates:
            return []
        candidates = next_candidates
    keys: list[str] = []
    for model in candidates:
        keys.extend(k for k in _keys(model) if k not in keys)
    return keys


def _field_path(loc: tuple[str | int, ...], tags: set[str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _rule_tags(model: type[BaseModel]) -> set[str]:
    return ALL_RULE_KEYS if issubclass(model, Rule) else set()


def _all_tags(model: type[BaseModel], seen: set[type[BaseModel]] | None = None) -> set[str]:
    seen = seen if seen is not None else set()
    if model in seen:
        return set()
    seen.add(model)
    tags = set(_tag_of(model)) | _rule_tags(model)
    for field in model.model_fields.values():
        for sub in _models_in(field.annotation):
            tags |= _all_tags(sub, seen)
    return tags


def _keys_of(node: yaml.Node | None) -> set[str]:
    return {k.value for k, _ in node.value} if isinstance(node, yaml.MappingNode) else set()


def _strip_tags(doc: YamlDocument, loc: tuple[str | int, ...], tags: set[str]) -> tuple[str | int, ...]:
    """Drop pydantic's discriminated-union tags (`csv`, `between`...) from a location; keep real YAML keys.

    A tag can equal a YAML key (a rule's tag is its key), so the YAML decides: a tag is dropped when the next
    part is a key of the current mapping, or when it is not a key itself.
    """
    node: yaml.Node | None = doc.root
    kept: list[str | int] = []
    for i, part in enumerate(loc):
        keys = _keys_of(node)
        if isinstance(part, str) and part in tags:
            following = loc[i + 1] if i + 1 < len(loc) else None
            if following in keys or part not in keys:
                continue
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        kept.append(part)
    return tuple(kept)


def _strip_union_labels(doc: YamlDocument, loc: tuple[str | int, ...]) -> tuple[tuple[str | int, ...], int | None]:
    """Drop pydantic's union member labels (`str`, `list[...]`, `function-after[...]`): they are not YAML keys.

    A label is a text part met where the YAML holds a scalar or a list, not a mapping. Returns the location
    without labels and the length of the prefix naming the union field (None when there was no label).
    """
    node: yaml.Node | None = doc.root
    kept: list[str | int] = []
    union_at: int | None = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            node = node.value[part] if part < len(node.value) else None
        elif isinstance(part, str) and node is not None:
            union_at = len(kept) if union_at is None else union_at
            continue
        else:
            node = None
        kept.append(part)
    return tuple(kept), union_at


_TYPE_NAMES = {"string": "a string", "list": "a list", "dict": "a mapping", "int": "an integer", "float": "a number"}


def _union_errors(doc: YamlDocument, errors: list[Any], tags: set[str]) -> list[tuple[Any, tuple[str | int, ...]]]:
    """Each error with its YAML location; the per-member errors of one union field become one error.

    When a member accepted the value's type and then refused the value, only that member's errors are kept;
    when no member accepted the type, one "expected A or B" error replaces them.
    """
    located = [(err, *_strip_union_labels(doc, _strip_tags(doc, tuple(err["loc"]), tags))) for err in errors]
    out: list[tuple[Any, tuple[str | int, ...]]] = []
    done: set[tuple[str | int, ...]] = set()
    for err, loc, union_at in located:
        if union_at is None:
            out.append((err, loc))
            continue
        field_loc = loc[:union_at]
        if field_loc in done:
            continue
        done.add(field_loc)
        members = [(e, lc) for e, lc, at in located if at is not None and lc[:at] == field_loc]
        refused = [(e, lc) for e, lc in members if not str(e["type"]).endswith("_type")]
        if refused:
            out.extend(refused)
            continue
        expected = [_TYPE_NAMES.get(str(e["type"]).removesuffix("_type"), str(e["type"])) for e, _ in members]
        found = type(members[0][0].get("input")).__name__
        merged = {**err, "type": "union_type", "msg": f"expected {' or '.join(dict.fromkeys(expected))}, found {found}"}
        out.append((merged, field_loc))
    return out


def errors_from_validation(
    doc: YamlDocument, exc: ValidationError, model: type[BaseModel], docs: str = "docs/sources.md"
) -> list[SpecError]:
    tags = _all_tags(model)
    errors: list[SpecError] = []
    for err, yaml_loc in _union_errors(doc, exc.errors(include_url=False), tags):
        loc = tuple(err["loc"])
        field = _field_path(yaml_loc, tags) or "(top level)"
        line = doc.line_of(yaml_loc)
        kind = err["type"]
        message = str(err["msg"]).removeprefix("Value error, ")
        hint = ""
        if kind == "extra_forbidden":
            key = str(loc[-1])
            valid = allowed_keys(model, loc)
            close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
            message = f"unknown key {key!r}"
            hint = f"did you mean {close[0]!r}?" if close else f"valid keys here: {', '.join(valid)}"
        elif kind == "unknown_rule":
            known = message.rsplit(": ", 1)[-1].split(", ")
            given = (
                [k for k in err.get("input", {}) if k not in ("severity", "name")]
                if isinstance(err.get("input"), dict)
                else []
            )
            close = [c for k in given for c in difflib.get_close_matches(str(k), known, n=1, cutoff=0.6)]
            message = f"unknown rule {given[0]!r}" if len(given) == 1 else message
            hint = f"did you mean {close[0]!r}?" if close else f"known rules here: {', '.join(known)}"
        elif kind == "missing":
            message = "required field is missing"
            hint = f"add `{loc[-1]}:` (see {docs})"
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            expected = err.get("ctx", {}).get("expected_tags", "")
            tag = err.get("ctx", {}).get("tag", "")
            names = [t.strip(" '") for t in str(expected).split(",")]
            close = difflib.get_close_matches(str(tag), names, n=1, cutoff=0.5)
            field = field + ".type" if kind == "union_tag_invalid" else field
            message = f"unknown type {tag!r}" if tag else "`type:` is missing"
            hint = f"did you mean {close[0]!r}?" if close else f"one of: {expected}"
        elif kind == "literal_error":
            value = err.get("input")
            choices = [
                c.strip(" '") for c in str(err.get("ctx", {}).get("expected", "")).replace(" or ", ",").split(",")
            ]
            close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.5)
            message = f"{value!r} is not allowed: {message[0].lower()}{message[1:]}"
            hint = f"did you mean {close[0]!r}?" if close else ""
        errors.append(SpecError(doc.path, line, field, message, hint))
    return errors


def validate_document(
    doc: YamlDocument, model: type[M], docs: str = "docs/sources.md"
) -> tuple[M | None, list[SpecError]]:
    """Validate a parsed YAML document against a spec model; `docs` is the reference page a fix hint points at."""
    if not isinstance(doc.data, dict):
        found = "an empty file" if doc.data is None else type(doc.data).__name__
        return None, [SpecError(doc.path, 1, "", f"expected a mapping of keys, found {found}")]
    try:
        return model.model_validate(doc.data), []
    except ValidationError as exc:
        return None, errors_from_validation(doc, exc, model, docs)
