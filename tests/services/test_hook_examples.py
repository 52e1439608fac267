"""The README's three hooks, run as written: a webhook with curl (through the real runner, retried on a 503), a
chat message, and moving an address with `ip addr` inside a network namespace of its own."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from hotstandby.ftlog import FaultTolerantLog
from hotstandby.settings import NodeSettings
from hotstandby.store import Store
from services.hooks import Event, Hooks, event_env
from tests.needs import need

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_block(name: str) -> str:
    """The fenced block of the README whose first comment line is ``# hook: <name>``."""
    for block in re.findall(r"```(?:sh|ini)\n(.*?)```", README.read_text(), re.S):
        if re.search(rf"^# hook: {re.escape(name)}[.\n]", block, re.M):
            return block
    raise AssertionError(f"no '# hook: {name}' block in the README")


def hook_file(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.sh"
    path.write_text(readme_block(name))
    path.chmod(0o755)
    return path


class Receiver:
    """An HTTP endpoint that keeps what it was sent, and answers ``codes`` in turn (then 200)."""

    def __init__(self, codes: list[int] | None = None) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.codes = list(codes or [])
        me = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                me.got.append((self.headers.get("content-type", ""), body))
                self.send_response(me.codes.pop(0) if me.codes else 200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver([503])
    yield r
    r.close()


EVENT = Event("role_change", "ACTIVE", "STANDBY", 7, rule="R1", cause="failover", peer_role="STANDBY",
              reason="SWITCH THIS SERVER TO PRIMARY, R1 failover: maximum heart beat fails, server2 failed 3 "
                     "consecutive probes & \"quotes\"")


def test_webhook_hook_posts_every_field_and_is_retried(tmp_path: Path, receiver: Receiver) -> None:
    """Through the real runner: the endpoint's 503 is a failure, the retry posts the same event (same seq)."""
    need("curl", "curl")
    store = Store(tmp_path / "data" / "hotstandby.db")
    node = NodeSettings(node_id="server1", data_dir=tmp_path / "data", cluster_name="pbx-east",
                        notify_command=str(hook_file(tmp_path, "webhook")))
    hooks = Hooks(node=node, store=store, ftlog=FaultTolerantLog(tmp_path / "logs", node_id="server1"),
                  base_env=lambda: {"PATH": os.environ["PATH"], "WEBHOOK_URL": receiver.url})

    async def main() -> None:
        task = asyncio.create_task(hooks.run())
        hooks.emit(EVENT)
        deadline = time.monotonic() + 30
        while store.pending_events() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        task.cancel()

    asyncio.run(main())
    store.close()
    assert len(receiver.got) == 2, "the 503 made the runner try again"
    forms = [{k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()} for _, body in receiver.got]
    assert forms[0] == forms[1]
    assert forms[0] == {"seq": "1", "event": "role_change", "node": "server1", "role": "ACTIVE", "previous": "STANDBY",
                        "epoch": "7", "rule": "R1", "cause": "failover", "reason": EVENT.reason}


def run_hook(path: Path, env: dict[str, str], wrapper: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"]} | event_env(EVENT, node_id="server1", cluster="pbx-east", at="t")
    return subprocess.run([*(wrapper or []), str(path)], env=base | {"HS_SEQUENCE": "1"} | env, capture_output=True,
                          text=True, timeout=60)


def test_chat_hook_sends_one_line_of_json_for_role_changes_only(tmp_path: Path) -> None:
    """A role change becomes {"text": ...} with the reason intact (quotes included); a CTI start sends nothing."""
    need("curl", "curl")
    chat = Receiver()
    try:
        hook = hook_file(tmp_path, "chat")
        r = run_hook(hook, {"CHAT_WEBHOOK_URL": chat.url})
        assert r.returncode == 0, r.stderr
        quiet = run_hook(hook, {"CHAT_WEBHOOK_URL": chat.url, "HS_EVENT": "cti_started"})
        assert quiet.returncode == 0
    finally:
        chat.close()
    assert len(chat.got) == 1
    ctype, body = chat.got[0]
    assert ctype == "application/json"
    assert json.loads(body) == {"text": f"[pbx-east] server1 is ACTIVE (epoch 7) after role_change: {EVENT.reason}"}


def test_address_hook_moves_the_address_with_the_role(tmp_path: Path) -> None:
    """In a namespace of its own with an interface of its own: ACTIVE adds the address (twice is fine), STANDBY removes
    it, and other events leave it alone."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    ip = need("ip", "iproute2")
    ns = f"hs-hook-{secrets.token_hex(3)}"
    address, device = "198.18.250.10/32", "hsveth0"
    subprocess.run([ip, "netns", "add", ns], check=True)
    try:
        subprocess.run([ip, "-n", ns, "link", "add", device, "type", "veth", "peer", "name", "hsveth1"], check=True)
        subprocess.run([ip, "-n", ns, "link", "set", device, "up"], check=True)
        hook = hook_file(tmp_path, "address")
        inside = [ip, "netns", "exec", ns]
        env = {"SERVICE_ADDRESS": address, "SERVICE_DEVICE": device}

        def has_address() -> bool:
            shown = subprocess.run([ip, "-n", ns, "-o", "addr", "show", "dev", device], capture_output=True,
                                   text=True, check=True).stdout
            return address.split("/")[0] in shown

        for _ in range(2):
            r = run_hook(hook, env | {"HS_ROLE": "ACTIVE"}, inside)
            assert r.returncode == 0, r.stderr
            assert has_address()
        assert run_hook(hook, env | {"HS_EVENT": "peer_lost", "HS_ROLE": "STANDBY"}, inside).returncode == 0
        assert has_address()
        r = run_hook(hook, env | {"HS_ROLE": "STANDBY", "HS_PREVIOUS_ROLE": "ACTIVE"}, inside)
        assert r.returncode == 0, r.stderr
        assert not has_address()
        bad = run_hook(hook, env | {"HS_ROLE": "ACTIVE", "SERVICE_DEVICE": "nosuchdev0"}, inside)
        assert bad.returncode == 1, "a failed move is a failure, so the runner retries it"
    finally:
        subprocess.run([ip, "netns", "del", ns], capture_output=True)
