"""Both services' OpenAPI documents, as their apps build them: valid, every answer typed, every operation named by
hand, the admin bearer and the peer signature declared, the compatibility probes plain text with their codes.
(tests/integration/test_openapi.py checks the documents a real pair serves and drives a generated client.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from hotstandby.ftlog import FaultTolerantLog
from hotstandby.metrics import monitor_registry
from hotstandby.settings import NodeSettings
from services.arbiter.app import create_app as arbiter_app
from services.monitor.app import MonitorContext
from services.monitor.app import create_app as monitor_app
from services.monitor.cti import CtiService
from services.monitor.supervisor import CtiSupervisor
from tests.services.arbiter.test_heartbeat import FakeClock, make_arbiter

SERVICES = ("arbiter", "monitor")
COMMANDS = {"arbiter": {"switch", "setMaintenance", "putConfig", "restartCti"},
            "monitor": {"startCti", "stopCti", "restartCti"}}
TEXT_ANSWERS = {"arbiter": {"getMetrics", "getLogs"}, "monitor": {"getMetrics", "getMonitor", "getMonitorAspx"}}


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The OpenAPI document of each service's app (nothing started: building the document runs no route)."""
    tmp = tmp_path_factory.mktemp("openapi")
    arbiter, _ = make_arbiter(tmp / "arbiter", FakeClock())
    node = NodeSettings(node_id="server1", data_dir=tmp / "monitor", peer_secret="s", admin_token="t")
    supervisor = CtiSupervisor(["true"], restart_delay=lambda: 1.0)
    ctx = MonitorContext(node=node, address=lambda: "127.0.0.11", role=lambda: None,
                         cti=CtiService(supervisor, lambda: (None, 0)),
                         registry=monitor_registry(node.node_id, lambda: False, lambda: 0),
                         ftlog=FaultTolerantLog(Path(tmp / "logs"), node_id=node.node_id), self_check=lambda: None)
    return {"arbiter": arbiter_app(arbiter).openapi(), "monitor": monitor_app(ctx).openapi()}


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield method.upper(), path, op


@pytest.mark.parametrize("service", SERVICES)
def test_document_passes_openapi_spec_validator(documents: dict[str, dict[str, Any]], service: str) -> None:
    """The document is valid OpenAPI (openapi-spec-validator raises otherwise)."""
    validate(documents[service])


@pytest.mark.parametrize("service", SERVICES)
def test_operations_are_named_by_hand_and_unique(documents: dict[str, dict[str, Any]], service: str) -> None:
    """Every operation has a camelCase operationId chosen by hand (none of FastAPI's ``status_status_get``)."""
    ids = [op.get("operationId", "") for _, _, op in operations(documents[service])]
    assert [i for i in ids if not re.fullmatch(r"[a-z]+([A-Z][a-z]*)*", i)] == []
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("service", SERVICES)
def test_every_success_answer_is_typed(documents: dict[str, dict[str, Any]], service: str) -> None:
    """Each 2xx answer is a named model (or a list of typed items), or plain text where the SPEC says text."""
    untyped = []
    for method, path, op in operations(documents[service]):
        for code, answer in op["responses"].items():
            if not code.startswith("2"):
                continue
            content = answer.get("content", {})
            if op["operationId"] in TEXT_ANSWERS[service]:
                if content.get("text/plain", {}).get("schema") != {"type": "string"}:
                    untyped.append(f"{method} {path}: not described as text/plain")
                continue
            schema = content.get("application/json", {}).get("schema", {})
            items = schema.get("items", {})
            typed = "$ref" in schema or (schema.get("type") == "array" and ("type" in items or "$ref" in items))
            if not typed:
                untyped.append(f"{method} {path} {code}: {schema}")
    assert untyped == []


@pytest.mark.parametrize("service", SERVICES)
def test_commands_declare_the_admin_bearer_and_peer_calls_the_signature(documents: dict[str, dict[str, Any]],
                                                                         service: str) -> None:
    """Commands need the adminToken bearer scheme, /peer/* the peerSignature scheme (the compact exchange its
    one-header form); reads need nothing."""
    doc = documents[service]
    schemes = doc["components"]["securitySchemes"]
    assert schemes["adminToken"] | {"description": ""} == {"type": "http", "scheme": "bearer", "description": ""}
    needs = {op["operationId"]: [name for req in op.get("security", []) for name in req]
             for _, _, op in operations(doc)}
    expected = {op_id: ["adminToken"] for op_id in COMMANDS[service]}
    if service == "arbiter":
        assert (schemes["peerSignature"]["type"], schemes["peerSignature"]["in"]) == ("apiKey", "header")
        assert (schemes["peerCompactSignature"]["type"], schemes["peerCompactSignature"]["in"]) == ("apiKey",
                                                                                                    "header")
        expected |= {op["operationId"]: ["peerCompactSignature" if path == "/peer/hb" else "peerSignature"]
                     for _, path, op in operations(doc) if path.startswith("/peer/")}
    assert {k: v for k, v in needs.items() if v} == expected


def test_compatibility_probes_are_documented_as_text_with_their_status_codes(
        documents: dict[str, dict[str, Any]]) -> None:
    """monitor.aspx and /monitor: 200 OK, 503 STANDBY, 400 for an unknown mod, all text/plain."""
    for path in ("/monitor", "/IPSCFG/admin/monitor.aspx"):
        answers = documents["monitor"]["paths"][path]["get"]["responses"]
        assert {code: list(a["content"]) for code, a in answers.items() if code != "422"} == {
            "200": ["text/plain"], "503": ["text/plain"], "400": ["text/plain"]}
        assert (answers["200"]["content"]["text/plain"]["example"],
                answers["503"]["content"]["text/plain"]["example"]) == ("OK", "STANDBY")
