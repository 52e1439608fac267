"""Time the README's failover sequence on the demo pair (`hotstandby demo`), polled every 20 ms.

    .venv/bin/python bench/demo_sequence.py [--runs 3] [--out bench/results/demo.json]

kill -9 of server1's node → server2 ACTIVE → VIP on server2 → CTI registered on server2; then
server1 restarted (SIGHUP to the demo) → serving → ACTIVE again. Prints one row per run.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

PY = [sys.executable, "-m", "cli"]
S1, S2, VIP, MGR = "http://127.0.0.11", "http://127.0.0.12", "http://127.0.0.10:8080", "http://127.0.0.13:2748"


def poll(pred, timeout: float = 60.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return time.monotonic()
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.02)
    raise SystemExit("timed out")


def role(base: str) -> str:
    return httpx.get(f"{base}:2011/status", timeout=0.5).json()["local"]["role"]


def vip() -> str:
    return httpx.get(f"{VIP}/whoami", timeout=0.5, headers={"connection": "close"}).json()["node_id"]


def holders() -> list[str]:
    return [h["node_id"] for h in httpx.get(f"{MGR}/state", timeout=0.5).json()["holders"]]


def one_run() -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HS_")}
    with tempfile.TemporaryDirectory() as tmp:
        demo = subprocess.Popen([*PY, "demo", "--workdir", tmp], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            assert demo.stdout is not None
            line = ""
            while "kill -9" not in line:
                line = demo.stdout.readline()
            pid = int(re.search(r"kill -9 (\d+)", line).group(1))  # type: ignore[union-attr]
            poll(lambda: vip() == "server1" and holders() == ["server1"])
            time.sleep(2)
            t0 = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            active = poll(lambda: role(S2) == "ACTIVE")
            vip_at = poll(lambda: vip() == "server2")
            cti_at = poll(lambda: holders() == ["server2"])
            overlap = httpx.get(f"{MGR}/state").json()["overlap_seconds_total"]
            time.sleep(2)
            demo.send_signal(signal.SIGHUP)
            serving = poll(lambda: httpx.get(f"{S1}:8080/healthz", timeout=0.5).status_code == 200)
            back = poll(lambda: role(S1) == "ACTIVE")
            return {"death_to_active": active - t0, "active_to_vip": vip_at - active,
                    "active_to_cti": cti_at - active, "overlap_s": overlap, "serving_to_active": back - serving}
        finally:
            demo.send_signal(signal.SIGINT)
            demo.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the runs here as JSON (the README quotes that file)")
    args = parser.parse_args()
    print("run  death→ACTIVE  ACTIVE→VIP  ACTIVE→CTI  overlap  server1 serving→ACTIVE"
          "   (s; bounds 5.0 / 2.0 / - / - / 4.0)")
    runs = []
    for i in range(args.runs):
        r = one_run()
        runs.append({k: round(v, 3) for k, v in r.items()})
        print(f"{i + 1:>3}  {r['death_to_active']:>12.2f}  {r['active_to_vip']:>10.2f}  {r['active_to_cti']:>10.2f}"
              f"  {r['overlap_s']:>7.2f}  {r['serving_to_active']:>23.2f}", flush=True)
    if args.out:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from bench.record import write

        body = {"command": f"bench/demo_sequence.py --runs {args.runs}", "runs": runs}
        print(f"wrote {write(args.out.name, body, args.out.parent)}")


if __name__ == "__main__":
    main()
