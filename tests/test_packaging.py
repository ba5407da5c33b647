"""The wheel a user installs carries every package of the tree."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import ROOT


def test_wheel_carries_every_package_folder(tmp_path: Path) -> None:
    """Each folder under relay/ with an __init__.py is in the built wheel (a non-editable
    install without relay.store crashed on every command)."""
    # From a copy without build/: setuptools would reuse a stale build/lib and hide a
    # package the config leaves out.
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        "build", "dist", "*.egg-info", ".git", ".venv", "__pycache__", "*.db*", ".*cache"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), str(source)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    packages = {str(p.parent.relative_to(ROOT)) for p in (ROOT / "relay").rglob("__init__.py")}
    assert packages
    missing = sorted(p for p in packages if not any(n.startswith(p + "/") for n in names))
    assert missing == []
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "relay").rglob("*.py")}
    assert modules <= set(names)
