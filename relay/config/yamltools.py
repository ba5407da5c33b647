"""Generic YAML config machinery: durations, sizes, ``${VAR}`` expansion, key paths and
the line each one is on, and the bound on what a config may expand to.

``${VAR}`` and ``${VAR:-default}`` are expanded in string values after parsing, so a value
never changes the YAML structure; ``$$`` is a literal ``$``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from relay.errors import ConfigError

_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"^\s*([0-9]+)\s*(B|KiB|MiB|KB|MB|k|K|M)?\s*$")
_SIZE_UNITS = {None: 1, "B": 1, "k": 1024, "K": 1024, "KiB": 1024, "KB": 1000,
               "M": 1024**2, "MiB": 1024**2, "MB": 1000**2}
_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

KeyPath = tuple[str | int, ...]


def parse_duration(value: float | str) -> float:
    """Seconds in ``250ms``, ``1s``, ``10m``, ``48h``, ``2d`` or a bare number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"duration must not be negative: {value!r}")
        return float(value)
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"not a duration: {value!r} (use 250ms, 1s, 10m, 48h or seconds)")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def parse_size(value: int | str) -> int:
    """Bytes in ``65536``, ``64KiB``, ``1MiB``."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"not a size: {value!r} (use 65536, 64KiB or 1MiB)")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)]



def dotted(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


#: Values a config may hold once YAML aliases are followed: a few "billion laughs" lines
#: would otherwise expand into gigabytes (a real config holds hundreds).
MAX_CONFIG_VALUES = 100_000
MAX_CONFIG_BYTES = 1024 * 1024


def line_map(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int]) -> None:
    if len(lines) >= MAX_CONFIG_VALUES:
        raise ConfigError([f"the config holds more than {MAX_CONFIG_VALUES} values once its "
                           "YAML aliases are followed"])
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = key.value
            line_map(value, (*path, name), lines)
            # The key's own line reads better than where its value starts.
            lines[(*path, name)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            line_map(item, (*path, index), lines)


class Problems:
    """Collects problems, each with its key path and line; ``items`` in file order."""

    def __init__(self, lines: Mapping[KeyPath, int], source: str) -> None:
        self.lines = lines
        self.source = source
        self._found: list[tuple[int, str]] = []
        #: the key paths a problem was reported at
        self.paths: set[KeyPath] = set()

    @property
    def items(self) -> list[str]:
        return [text for _, text in sorted(self._found, key=lambda item: item[0])]

    def add(self, path: KeyPath, message: str) -> None:
        self.paths.add(path)
        probe = path
        while probe and probe not in self.lines:
            probe = probe[:-1]
        line = self.lines.get(probe)
        where = f"{self.source}:{line}: " if line else f"{self.source}: "
        self._found.append((line or 0, f"{where}{dotted(path)}: {message}"))


def expand(value: Any, env: Mapping[str, str], path: KeyPath, problems: Problems) -> Any:
    if isinstance(value, dict):
        return {k: expand(v, env, (*path, k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, env, (*path, i), problems) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        problems.add(path, f"environment variable {name} is not set (and has no :-default)")
        return ""

    return _VARIABLE.sub(substitute, value)
