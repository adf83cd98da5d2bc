"""Spec errors that name the file, the line, the field and the fix."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SpecError:
    """One problem in one YAML file, printable as `file:line: field: message (hint)`."""

    path: Path
    line: int | None
    field: str
    message: str
    hint: str = ""
    severity: str = "error"  # error | warning

    def format(self, relative_to: Path | None = None) -> str:
        path = self.path
        if relative_to is not None:
            with contextlib.suppress(ValueError):
                path = self.path.resolve().relative_to(relative_to.resolve())
        where = f"{path}:{self.line}" if self.line else f"{path}"
        text = f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text

    def to_dict(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "line": self.line,
            "field": self.field,
            "message": self.message,
            "hint": self.hint,
            "severity": self.severity,
        }


class SpecValidationError(Exception):
    """Raised when a spec file does not validate; carries every error found in it."""

    def __init__(self, errors: list[SpecError]) -> None:
        self.errors = errors
        super().__init__("\n".join(e.format() for e in errors))
