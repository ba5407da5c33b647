"""docs/grafana/: every metric the dashboard and the alert rules query is one the relay's
/metrics serves (the type lines name every metric, with samples or not yet)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from conftest import MakeRelay

GRAFANA = Path(__file__).resolve().parent.parent / "docs" / "grafana"
_METRIC = re.compile(r"\brelay_[a-z_]+")
_HISTOGRAM_PARTS = ("_bucket", "_count", "_sum")


def queried() -> dict[str, set[str]]:
    """Each file's metric names, histogram parts folded into their histogram."""
    dashboard = json.loads((GRAFANA / "relay.json").read_text(encoding="utf-8"))
    rules = yaml.safe_load((GRAFANA / "alerts.yaml").read_text(encoding="utf-8"))
    exprs = {
        "relay.json": [t["expr"] for p in dashboard["panels"] for t in p["targets"]],
        "alerts.yaml": [r["expr"] for g in rules["groups"] for r in g["rules"]],
    }
    found = {}
    for name, texts in exprs.items():
        names = {m for text in texts for m in _METRIC.findall(text)}
        found[name] = {next((n.removesuffix(s) for s in _HISTOGRAM_PARTS if n.endswith(s)), n)
                       for n in names}
    return found


async def test_every_metric_queried_is_served(make_relay: MakeRelay) -> None:
    client = await make_relay("  []")
    text = await (await client.get("/metrics")).text()
    served = set(re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE))
    files = queried()
    assert len(files["relay.json"]) >= 12 and len(files["alerts.yaml"]) >= 4
    for name, metrics in files.items():
        assert metrics - served == set(), f"{name} queries metrics /metrics lacks"
    # what the issue asks the dashboard to show, and the alerts to watch
    assert {"relay_events_received_total", "relay_queue_depth", "relay_queue_oldest_seconds",
            "relay_dead_letters", "relay_delivery_attempt_seconds",
            "relay_messages_dropped_total"} <= files["relay.json"]
    rules = (GRAFANA / "alerts.yaml").read_text(encoding="utf-8")
    assert "increase(relay_dead_letters" in rules and "> 300" in rules
    assert 'outcome="invalid_signature"' in rules


def test_the_check_would_see_a_metric_that_is_not_served(tmp_path: Path) -> None:
    """The name extraction finds a histogram's parts and a made-up name alike."""
    assert _METRIC.findall("rate(relay_nope_total[5m]) + relay_x_bucket") == [
        "relay_nope_total", "relay_x_bucket"]
