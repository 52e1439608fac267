"""The console as the arbiter serves it: its files ship in the package and reach nothing outside it, the
page's headers, and CORS on the open reads for the pair's own consoles only."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
from fastapi import FastAPI

from hotstandby.settings import ClusterSettings, NodeSettings
from services.arbiter.console import OPEN_READS, OpenReadsCors, console_origins, load_assets, page_headers

CONSOLE = "http://127.0.0.11:2011"


def test_every_file_the_page_loads_ships_in_the_package_and_nothing_comes_from_elsewhere() -> None:
    """index.html's scripts and style and every module the scripts import are console files; no asset names
    another host (no CDN, no font, no analytics)."""
    assets = load_assets()
    page = assets["index.html"].body.decode()
    wanted = set(re.findall(r'(?:src|href)="/console/([^"]+)"', page))
    for name, asset in assets.items():
        if name.endswith(".js"):
            wanted |= set(re.findall(r'from "\./([^"]+)"', asset.body.decode()))
    assert wanted and wanted <= set(assets)
    assert {"main.js", "api.js", "servers.js", "settings.js", "log.js", "console.css"} <= wanted
    for name, asset in assets.items():
        assert not re.search(rb"(?:src|href|url\()\s*=?\s*[\"']?(?:https?:)?//", asset.body), name


def test_the_package_data_covers_the_console_files() -> None:
    """pyproject's package-data ships every kind of file the console has."""
    text = (Path(__file__).parents[3] / "pyproject.toml").read_text()
    kinds = {"." + name.rsplit(".", 1)[-1] for name in load_assets()}
    assert all(f'"*{kind}"' in text for kind in kinds)


def test_the_console_origins_are_the_servers_this_node_and_the_vip_on_the_arbiter_port() -> None:
    """Origins as a browser writes them: lower case, IPv6 in brackets, each once, the VIP's host without its port."""
    cluster = ClusterSettings(server1_address="HS1.example", server2_address="fd00::2", arbiter_port=2011,
                              vip_address="vip.example:8080", heartbeat_interval_s=1, heartbeat_timeout_s=1)
    node = NodeSettings(node_id="server1", local_address="hs1.example")
    assert console_origins(cluster, node) == ["http://hs1.example:2011", "http://[fd00::2]:2011",
                                              "http://vip.example:2011"]


def test_default_ports_are_left_out_of_an_origin_as_browsers_do() -> None:
    """An https console on 443 has the origin https://host."""
    cluster = ClusterSettings(server1_address="a.example", server2_address="b.example", arbiter_port=443,
                              heartbeat_interval_s=1, heartbeat_timeout_s=1)
    node = NodeSettings(node_id="server2", tls_cert_file="c.pem", tls_key_file="k.pem")
    assert console_origins(cluster, node) == ["https://a.example", "https://b.example"]


def test_the_page_runs_only_its_own_files_and_cannot_be_framed() -> None:
    """The CSP allows this page's scripts and styles, reads from the pair's consoles, and no framing."""
    csp = page_headers([CONSOLE])["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe" not in csp
    assert f"connect-src 'self' {CONSOLE};" in csp
    assert "frame-ancestors 'none'" in csp


def _ask(method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    """One request to a small app with the console's CORS middleware, through ASGI (no server)."""
    app = FastAPI()

    @app.get("/status")
    def status() -> dict[str, str]:
        return {"ok": "yes"}

    @app.post("/switch")
    def switch() -> dict[str, str]:
        return {"ok": "yes"}

    app.add_middleware(OpenReadsCors, origins=lambda: [CONSOLE])

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=CONSOLE) as client:
            return await client.request(method, path, headers=headers)

    return asyncio.run(go())


def test_an_open_read_answers_the_pairs_consoles_cross_origin() -> None:
    """GET /status from a console of the pair carries Access-Control-Allow-Origin for that origin."""
    r = _ask("GET", "/status", {"origin": CONSOLE})
    assert (r.status_code, r.headers.get("access-control-allow-origin")) == (200, CONSOLE)
    assert r.headers["vary"] == "Origin"
    assert "/status" in OPEN_READS and "/switch" not in OPEN_READS


def test_other_origins_and_commands_get_no_cors_headers() -> None:
    """A foreign page may not read the status, and no page may send a command (no CORS on POST or preflight)."""
    assert "access-control-allow-origin" not in _ask("GET", "/status", {"origin": "http://evil.example"}).headers
    assert "access-control-allow-origin" not in _ask("POST", "/switch", {"origin": CONSOLE}).headers
    preflight = _ask("OPTIONS", "/switch", {"origin": CONSOLE, "access-control-request-method": "POST",
                                            "access-control-request-headers": "authorization"})
    assert "access-control-allow-origin" not in preflight.headers
