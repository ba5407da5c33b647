"""The problems of a config, found in one run: the YAML parser's as one line, the config
schema's at their key paths, and a way to skip a key the schema already named."""

from __future__ import annotations

from typing import Any

import yaml

from relay.config.validation import config_validator, schema_message
from relay.config.yamltools import KeyPath, Problems


def yaml_problem(source: str, exc: yaml.YAMLError) -> str:
    """One line: the file, the line and column, and what the YAML parser says."""
    mark = getattr(exc, "problem_mark", None)
    where = f"{source}:{mark.line + 1}" if mark is not None else source
    column = f" (column {mark.column + 1})" if mark is not None else ""
    what = " ".join(str(getattr(exc, "problem", None) or exc).split())
    context = getattr(exc, "context", None)
    return f"{where}: not valid YAML: {what}{column}" + (f", {context}" if context else "")


def against_schema(data: dict[str, Any], problems: Problems) -> None:
    """The config schema's problems, each at its key path (unknown keys one by one)."""
    for error in sorted(config_validator().iter_errors(data), key=lambda e: list(e.path)):
        if error.validator == "additionalProperties":
            known = error.schema.get("properties", {})
            for key in sorted(k for k in error.instance if k not in known):
                problems.add((*error.absolute_path, key), "unknown key")
        else:
            problems.add(tuple(error.absolute_path), schema_message(error))


class Unrepeated(Problems):
    """Problems that skips a key path the schema reported already (one problem a key)."""

    def __init__(self, into: Problems, reported: set[KeyPath]) -> None:
        super().__init__(into.lines, into.source)
        self._into, self._reported = into, reported

    def add(self, path: KeyPath, message: str) -> None:
        if path not in self._reported:
            self._into.add(path, message)

    @property
    def items(self) -> list[str]:
        return self._into.items
