"""Load YAML keeping the line of every key, so validation errors can point at `file:line`.

PyYAML's composed node tree carries marks; we keep it beside the plain data and walk it by a
pydantic error location to find the line. Duplicate keys (silently merged by YAML) are reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from foundation.specs.errors import SpecError


@dataclass(frozen=True)
class YamlDocument:
    path: Path
    data: Any
    root: yaml.Node | None

    def line_of(self, loc: tuple[str | int, ...]) -> int | None:
        """1-based line of the deepest node on `loc` (a key's own line for mapping keys)."""
        node = self.root
        line = node.start_mark.line + 1 if node is not None else None
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                match = next(((k, v) for k, v in node.value if k.value == part), None)
                if match is None:
                    break
                line = match[0].start_mark.line + 1
                node = match[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                break
        return line


def duplicate_keys(path: Path, node: yaml.Node | None, loc: str = "") -> list[SpecError]:
    errors: list[SpecError] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            field = f"{loc}.{key.value}" if loc else str(key.value)
            if key.value in seen:
                errors.append(SpecError(path, key.start_mark.line + 1, field, "duplicate key", "keep one of the two"))
            seen.add(key.value)
            errors.extend(duplicate_keys(path, value, field))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            errors.extend(duplicate_keys(path, item, f"{loc}[{i}]"))
    return errors


# libyaml's safe loader when PyYAML was built with it: the same documents and marks, 5-10x faster than the pure
# Python one (a workspace of 500 source files spent 2.8 s of its definitions load parsing them: bench/automation.py).
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: Path) -> tuple[YamlDocument | None, list[SpecError]]:
    """Parse one YAML file; on a syntax error return the error with its line and no document."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [SpecError(path, None, "", f"cannot read the file: {exc}")]
    try:
        try:
            root = yaml.compose(text, Loader=SAFE_LOADER)
            data = yaml.load(text, Loader=SAFE_LOADER)
        except yaml.YAMLError:  # a broken file: parsed again by PyYAML itself, whose messages the docs show
            root = yaml.compose(text, Loader=yaml.SafeLoader)
            data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or str(exc)
        if exc.context and exc.context_mark is not None and exc.context_mark is not mark:
            # e.g. an unclosed quote or bracket: say where it was opened, not only where the parser gave up
            problem += f" ({exc.context} started on line {exc.context_mark.line + 1})"
        hint = "check the indentation and that values with ':' or '#' are quoted"
        return None, [SpecError(path, line, "", f"YAML syntax error: {problem}", hint)]
    except yaml.YAMLError as exc:
        return None, [SpecError(path, None, "", f"YAML syntax error: {exc}")]
    return YamlDocument(path, data, root), duplicate_keys(path, root)
