"""subhook-relay: the edge gateway for SUBMAIL's SUBHOOK callbacks."""

from __future__ import annotations

from importlib import metadata


def version() -> str:
    """The installed distribution's version ("unknown" when run from a bare source tree)."""
    try:
        return metadata.version("subhook-relay")
    except metadata.PackageNotFoundError:
        return "unknown"
