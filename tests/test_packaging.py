"""The wheel a user installs carries every package and every data file of the tree."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator

import pytest
from conftest import ROOT

STATIC = ROOT / "relay" / "web" / "static"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    """The wheel built from a copy of this checkout, once for the module."""
    tmp_path = tmp_path_factory.mktemp("wheel")
    # From a copy without build/: setuptools would reuse a stale build/lib and hide a
    # package the config leaves out.
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        "build", "dist", "*.egg-info", ".git", ".venv", "__pycache__", "*.db*", ".*cache"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), str(source)], check=True, capture_output=True)
    (built,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(built) as archive:
        yield archive


def test_wheel_carries_every_package_folder(wheel: zipfile.ZipFile) -> None:
    """Each folder under relay/ with an __init__.py is in the built wheel (a non-editable
    install without relay.store crashed on every command)."""
    names = wheel.namelist()
    packages = {str(p.parent.relative_to(ROOT)) for p in (ROOT / "relay").rglob("__init__.py")}
    assert packages
    missing = sorted(p for p in packages if not any(n.startswith(p + "/") for n in names))
    assert missing == []
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "relay").rglob("*.py")}
    assert modules <= set(names)


def test_wheel_carries_every_data_file_under_relay(wheel: zipfile.ZipFile) -> None:
    """Every file under relay/ that is not Python (the console's static files, vendored
    ones and their licences included) is in the wheel, byte for byte: package data is
    listed by glob in pyproject.toml, and a glob that misses a folder fails nowhere else."""
    data = {
        str(p.relative_to(ROOT)): p
        for p in (ROOT / "relay").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in {".py", ".pyc"}
    }
    assert any(name.startswith("relay/web/static/vendor/") for name in data)
    names = set(wheel.namelist())
    assert sorted(set(data) - names) == []
    changed = sorted(name for name, path in data.items() if wheel.read(name) != path.read_bytes())
    assert changed == []


def test_vendored_files_match_their_record() -> None:
    """Each vendored folder has its package's licence beside the files, and VENDORED.md
    gives every file's sha256 on its line (the record .ci/vendor re-fetches and checks)."""
    vendor = STATIC / "vendor"
    lines = (vendor / "VENDORED.md").read_text(encoding="utf-8").splitlines()
    folders = [p for p in vendor.iterdir() if p.is_dir()]
    assert folders
    for folder in folders:
        assert any(p.name.startswith("LICENSE") for p in folder.iterdir()), folder
        for path in folder.iterdir():
            (line,) = [line for line in lines if f"`{path.relative_to(vendor)}`" in line]
            assert hashlib.sha256(path.read_bytes()).hexdigest() in line, path
