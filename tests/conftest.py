from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT.parent / "shared" / "subhook-docs"


@pytest.fixture
def docs_dir() -> Path:
    """SUBMAIL's docs beside the checkout; the generator's input."""
    if not DOCS.is_dir():
        pytest.fail(f"SUBMAIL docs not found at {DOCS}: ../shared must sit beside the checkout")
    return DOCS


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Factory: write YAML text to a config file in a fresh folder and return its path."""

    def write(text: str, name: str = "relay.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write
