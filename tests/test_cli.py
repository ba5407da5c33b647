from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from relay.cli.parser import main

ROOT = Path(__file__).resolve().parent.parent

CONFIG = """\
subhooks:
  - {path: /subhook/sms, product: sms, keys: [k]}
routes:
  - name: receipts
    match: {product: sms, event: [delivered, dropped], tag: "order-*"}
    destinations: [{name: orders, url: "http://127.0.0.1:9000/hook"}]
  - name: untagged
    match: {tag: null}
    destinations: [{name: audit, url: "http://127.0.0.1:9001/hook"},
                   {name: orders, url: "http://127.0.0.1:9000/hook"}]
"""


def test_check_summarises_a_valid_config(
    write_config: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """`relay check` exits 0 and lists subhooks and routes."""
    assert main(["check", "--config", str(write_config(CONFIG))]) == 0
    out = capsys.readouterr().out
    assert "subhook /subhook/sms (sms, 1 key(s))" in out
    assert "route receipts: product=sms event=delivered|dropped tag=order-* -> orders" in out
    assert "2 route(s), 2 destination(s)" in out


def test_check_fails_listing_errors(
    write_config: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """`relay check` exits 1 and names each problem's key path."""
    path = write_config(CONFIG.replace("url: \"http://127.0.0.1:9001/hook\"", "url: ftp://x"))
    assert main(["check", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert "routes[1].destinations[0].url" in err
    assert f"{path}:9:" in err


def test_route_explains_matches(
    write_config: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """`relay route` prints each route's verdict and the de-duplicated destinations."""
    path = str(write_config(CONFIG))
    assert main(["route", "--config", path, "--product", "sms", "--event", "delivered"]) == 0
    out = capsys.readouterr().out
    assert "route receipts: no match" in out
    assert "tag: no tag does not match order-*" in out
    assert "route untagged: MATCH" in out
    assert out.strip().endswith("destinations: audit (http://127.0.0.1:9001/hook), "
                                "orders (http://127.0.0.1:9000/hook)")
    assert main(["route", "--config", path, "--product", "sms", "--event", "dropped",
                 "--tag", "order-7"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.endswith("destinations: orders (http://127.0.0.1:9000/hook)")
    args = ["route", "--config", path, "--product", "mms", "--event", "mo", "--tag", "x"]
    assert main(args) == 0
    assert "destinations: none" in capsys.readouterr().out


def test_python_m_relay_is_relay(docs_dir: Path, tmp_path: Path) -> None:
    """`python -m relay schemas build` runs the same CLI and writes the schemas."""
    result = subprocess.run(
        [sys.executable, "-m", "relay", "schemas", "build", "--docs", str(docs_dir),
         "--out", str(tmp_path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "wrote 55 schemas for internationalsms, mail, mms, shorturl, sms, voice" \
        in result.stdout
    assert (tmp_path / "mms" / "ct_template_reject.json").exists()


def test_schemas_build_reports_missing_docs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A docs folder without docs is a clear failure, exit 1."""
    assert main(["schemas", "build", "--docs", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    assert "no SUBMAIL docs" in capsys.readouterr().err


def test_check_refuses_a_store_this_build_cannot_open(
    write_config: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A store URL of a kind the relay has no implementation for is refused by check;
    sqlite:/// and postgresql:// are accepted (check does not connect)."""
    path = write_config("store: mysql://relay@127.0.0.1/relay\n" + CONFIG)
    assert main(["check", "--config", str(path)]) == 1
    assert "relay.yaml:1: store: 'mysql://relay@127.0.0.1/relay' does not match" \
        in capsys.readouterr().err
    path = write_config("store: postgresql://relay:pw@127.0.0.1:5432/relay\n" + CONFIG)
    assert main(["check", "--config", str(path)]) == 0
