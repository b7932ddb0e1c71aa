"""The Grafana dashboard (deploy/grafana): every panel's query is one the stack's
Prometheus evaluates without an error, against its real series."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ferry.config import Settings
from ferry.devstack import Stack

pytestmark = pytest.mark.stack

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
DASHBOARD = json.loads((GRAFANA / "dashboards" / "ferry.json").read_text())
PANELS = [(p["title"], t["expr"]) for p in DASHBOARD["panels"] for t in p["targets"]]


@pytest.mark.parametrize(("title", "expr"), PANELS, ids=[t for t, _ in PANELS])
async def test_every_panel_query_evaluates(
    stack: Stack, settings: Settings, title: str, expr: str
) -> None:
    async with httpx.AsyncClient(base_url=settings.prometheus_url, timeout=10) as http:
        response = await http.get("/api/v1/query", params={"query": expr})
    answer: dict[str, Any] = response.json()
    assert answer["status"] == "success", f"{title}: {answer.get('error')}"


def test_the_panels_use_the_provisioned_data_source() -> None:
    [source] = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"]
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert panel["targets"], panel["title"]


async def test_a_broken_query_is_refused(stack: Stack, settings: Settings) -> None:
    """What the panel test would see of a query with a typo."""
    async with httpx.AsyncClient(base_url=settings.prometheus_url, timeout=10) as http:
        response = await http.get("/api/v1/query", params={"query": "sum by (topic (x)"})
    assert response.json()["status"] == "error"
