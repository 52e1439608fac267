"""The fault lab: real hosts on one machine, made of network namespaces, and the faults we inflict on them.

One run owns four namespaces, named with a per-run id so parallel and stale runs never collide:

    hs-s1-<id>  server1 at 198.18.<net>.1        hs-infra-<id>  198.18.<net>.3: the CTI manager
    hs-s2-<id>  server2 at 198.18.<net>.2                        simulator, the LAN probe target, proxies
    hs-br-<id>  the bridge that joins them, plus a veth from the root namespace (198.18.<net>.254)
                so the test process can observe every host from outside the pair

A run may ask for more hosts (``Lab(hosts=ALL_HOSTS)``): ``lb`` at .4 (HAProxy and the LAN probe
target) and ``etcd`` at .5 (the witness), so that any of them can be cut from any other.

Addresses come from 198.18.0.0/15 only (RFC 2544 benchmarking space), one /24 per run, and nothing
is routed anywhere else. Faults are iptables rules inside a host's namespace (DROP for a cut,
``-m statistic --mode random`` for loss), signals to every process of a host, libfaketime, and
small filesystems; ``heal()`` undoes the network ones. ``cleanup_stale()`` removes what a killed run
left behind (its owner pid is gone); a live run's namespaces are never touched.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lab.waiting import stop_process

FAKETIME_LIBS = tuple(f"/usr/lib/{d}faketime/libfaketime.so.1"
                      for d in ("x86_64-linux-gnu/", "aarch64-linux-gnu/", ""))

ROOT = Path(__file__).resolve().parents[1]
STATE_DIR = Path("/run/hs-lab")  # <id>.pid (the owning pytest) and net-<n> (the /24 a run holds)
MOUNT_BASE = Path("/tmp")  # lab filesystems are mounted under /tmp/hs-lab-<id>/
HOSTS = ("server1", "server2", "infra")
ALL_HOSTS = (*HOSTS, "lb", "etcd")
HOST_OCTET = {"server1": 1, "server2": 2, "infra": 3, "lb": 4, "etcd": 5}
SHORT = {"server1": "s1", "server2": "s2", "infra": "infra", "lb": "lb", "etcd": "etcd", "bridge": "br"}
OBSERVER_OCTET = 254
NS_RE = re.compile(r"^hs-(s1|s2|infra|lb|etcd|br)-([0-9a-f]{6})$")
LINK_RE = re.compile(r"^hs([0-9a-f]{6})$")
# Proxy settings must not send a node's (or the CTI simulator's) HTTP anywhere but our own network.
PROXY_ENV = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


class LabError(RuntimeError):
    """A lab command failed: the text holds the command and its stderr."""


def run(cmd: Sequence[str], *, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise LabError(f"{' '.join(cmd)} -> {r.returncode}: {r.stderr.strip() or r.stdout.strip()}")
    return r


def unavailable() -> str | None:
    """Why the lab cannot run here (a skip reason), or None when it can."""
    if sys.platform != "linux":
        return "the fault lab needs Linux network namespaces"
    if os.geteuid() != 0:
        return "the fault lab needs root (ip netns, iptables, mount)"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"the fault lab needs '{tool}' (apt-get install iproute2 iptables)"
    probe = f"hs-br-{secrets.token_hex(3)}"
    try:
        made = run(["ip", "netns", "add", probe], check=False)
        if made.returncode != 0:
            return f"'ip netns add' does not work here: {made.stderr.strip()}"
        ipt = run(["ip", "netns", "exec", probe, "iptables", "-S"], check=False)
        if ipt.returncode != 0:
            return f"iptables does not work inside a namespace here: {ipt.stderr.strip()}"
    finally:
        run(["ip", "netns", "del", probe], check=False)
    return None


def _owner_alive(run_id: str) -> bool:
    try:
        pid = int((STATE_DIR / f"{run_id}.pid").read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return False
    return True


def cleanup_stale() -> list[str]:
    """Remove namespaces, links, mounts and subnet claims of lab runs whose owner is gone."""
    removed: list[str] = []
    for line in run(["ip", "netns", "list"], check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = NS_RE.match(name)
        if not m or _owner_alive(m.group(2)):
            continue
        for pid in run(["ip", "netns", "pids", name], check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        run(["ip", "netns", "del", name], check=False)
        removed.append(name)
    for line in run(["ip", "-o", "link", "show"], check=False).stdout.splitlines():
        parts = line.split(":")
        name = parts[1].strip().split("@")[0] if len(parts) > 1 else ""
        m = LINK_RE.match(name)
        if m and not _owner_alive(m.group(1)):
            run(["ip", "link", "del", name], check=False)
            removed.append(name)
    with open("/proc/mounts") as fh:
        mounts = [ln.split()[1] for ln in fh]
    for mnt in reversed(mounts):
        m = re.search(r"/hs-lab-([0-9a-f]{6})/", mnt + "/")
        if m and not _owner_alive(m.group(1)):
            run(["umount", "-l", mnt], check=False)
            removed.append(mnt)
    if STATE_DIR.exists():
        for claim in STATE_DIR.iterdir():
            rid = claim.read_text().split()[0] if claim.name.startswith("net-") else claim.stem
            if not _owner_alive(rid):
                claim.unlink(missing_ok=True)
    return removed


@dataclass
class Lab:
    """One run's hosts and bridge. ``setup()`` builds them, ``teardown()`` removes everything."""

    run_id: str = field(default_factory=lambda: secrets.token_hex(3))
    hosts: tuple[str, ...] = HOSTS
    net: int = -1
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    mounts: list[Path] = field(default_factory=list)

    # -- names -------------------------------------------------------------------------------
    def ns(self, host: str) -> str:
        return f"hs-{SHORT[host]}-{self.run_id}"

    def addr(self, host: str) -> str:
        octet = OBSERVER_OCTET if host == "observer" else HOST_OCTET[host]
        return f"198.18.{self.net}.{octet}"

    @property
    def base(self) -> Path:
        """A per-run directory for data dirs and mount points (the stale cleanup recognises it)."""
        return MOUNT_BASE / f"hs-lab-{self.run_id}"

    # -- build and tear down -----------------------------------------------------------------
    def _claim_net(self) -> None:
        used = set(re.findall(r"inet 198\.18\.(\d+)\.", run(["ip", "-4", "-o", "addr"], check=False).stdout))
        for n in range(1, 255):
            if str(n) in used:
                continue
            try:
                fd = os.open(STATE_DIR / f"net-{n}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                continue
            os.write(fd, self.run_id.encode())
            os.close(fd)
            self.net = n
            return
        raise LabError("no free /24 left in 198.18.0.0/16 for a lab run")

    def setup(self) -> Lab:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        (STATE_DIR / f"{self.run_id}.pid").write_text(f"{os.getpid()}\n")
        self._claim_net()
        self.base.mkdir(parents=True, exist_ok=True)
        try:
            br = self.ns("bridge")
            run(["ip", "netns", "add", br])
            self.in_ns(br, "ip", "link", "add", "br0", "type", "bridge")
            self.in_ns(br, "ip", "link", "set", "br0", "up")
            for host in self.hosts:
                ns = self.ns(host)
                run(["ip", "netns", "add", ns])
                self.in_ns(ns, "ip", "link", "set", "lo", "up")
                run(["ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", host, "netns", br])
                self._plug(br, host)
                self.in_ns(ns, "ip", "addr", "add", f"{self.addr(host)}/24", "dev", "eth0")
                self.in_ns(ns, "ip", "link", "set", "eth0", "up")
            # The observer: the test process in the root namespace, on the same /24 and nowhere else.
            root_link = f"hs{self.run_id}"
            run(["ip", "link", "add", root_link, "type", "veth", "peer", "name", "observer", "netns", br])
            self._plug(br, "observer")
            run(["ip", "addr", "add", f"{self.addr('observer')}/24", "dev", root_link])
            run(["ip", "link", "set", root_link, "up"])
        except Exception:
            self.teardown()
            raise
        return self

    def _plug(self, br: str, port: str) -> None:
        self.in_ns(br, "ip", "link", "set", port, "master", "br0")
        self.in_ns(br, "ip", "link", "set", port, "up")

    def teardown(self) -> None:
        for p in self.procs:
            stop_process(p)
        self.procs.clear()
        for mnt in reversed(self.mounts):
            run(["umount", "-l", str(mnt)], check=False)
        self.mounts.clear()
        for host in (*self.hosts, "bridge"):
            ns = self.ns(host)
            for pid in run(["ip", "netns", "pids", ns], check=False).stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            run(["ip", "netns", "del", ns], check=False)
        run(["ip", "link", "del", f"hs{self.run_id}"], check=False)
        with contextlib.suppress(OSError):
            (STATE_DIR / f"net-{self.net}").unlink(missing_ok=True)
            (STATE_DIR / f"{self.run_id}.pid").unlink(missing_ok=True)
        shutil.rmtree(self.base, ignore_errors=True)

    # -- running things on a host ------------------------------------------------------------
    def exec_prefix(self, host: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns(host)]

    def in_ns(self, ns: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(["ip", "netns", "exec", ns, *cmd], check=check)

    def sh(self, host: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.in_ns(self.ns(host), *cmd, check=check)

    def spawn(self, host: str, cmd: Sequence[str], *, env: dict[str, str] | None = None, log: Path | None = None,
              wrapper: Sequence[str] = (), track: bool = True) -> subprocess.Popen[bytes]:
        """Start ``cmd`` on ``host`` (``ip netns exec`` execs, so the pid is the command's own)."""
        full_env = {k: v for k, v in (env if env is not None else os.environ).items() if k not in PROXY_ENV}
        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
        try:
            p = subprocess.Popen([*self.exec_prefix(host), *wrapper, *cmd], env=full_env, stdout=out,
                                 stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        finally:
            if log:
                out.close()  # type: ignore[union-attr]
        if track:
            self.procs.append(p)
        return p

    def pids(self, host: str) -> list[int]:
        """Every process on ``host`` (its network namespace): a node and its CTI child, say."""
        return [int(p) for p in run(["ip", "netns", "pids", self.ns(host)], check=False).stdout.split()]

    def clear_host(self, host: str, timeout: float = 10) -> None:
        """SIGKILL whatever still runs on ``host`` (every process there is this run's) and wait until none."""
        deadline = time.monotonic() + timeout
        while (pids := self.pids(host)) and time.monotonic() < deadline:
            self.signal_host(host, signal.SIGKILL)
            time.sleep(0.05)
        if pids:
            raise LabError(f"processes {pids} survive on {host}")

    def signal_host(self, host: str, sig: int) -> None:
        """Send ``sig`` to every process on ``host``: SIGSTOP/SIGCONT freeze and thaw the whole machine."""
        for pid in self.pids(host):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    # -- network faults ----------------------------------------------------------------------
    def _ipt(self, host: str, *rule: str) -> None:
        self.sh(host, "iptables", "-w", *rule)

    # A network fault is a list of filter rules, each (host, rule spec). ``apply`` adds them with one
    # iptables-restore per host; ``undo=True`` deletes exactly those rules again (-D removes one copy
    # of a rule), so overlapping faults heal one at a time, each leaving the others in place.
    def apply(self, rules: Sequence[tuple[str, str]], *, undo: bool = False) -> None:
        by_host: dict[str, list[str]] = {}
        for host, spec in rules:
            by_host.setdefault(host, []).append(f"{'-D' if undo else '-A'} {spec}")
        for host, lines in by_host.items():
            text = "*filter\n" + "\n".join(lines) + "\nCOMMIT\n"
            r = subprocess.run([*self.exec_prefix(host), "iptables-restore", "-w", "-n"], input=text,
                               capture_output=True, text=True, timeout=20)
            if r.returncode != 0:
                raise LabError(f"iptables-restore on {host} -> {r.returncode}: {r.stderr.strip()}")

    def cut_rules(self, src: str, dst: str, *, both: bool = True) -> list[tuple[str, str]]:
        rules = [(src, f"OUTPUT -d {self.addr(dst)} -j DROP"), (dst, f"INPUT -s {self.addr(src)} -j DROP")]
        return rules + (self.cut_rules(dst, src, both=False) if both else [])

    def loss_rules(self, a: str, b: str, probability: float) -> list[tuple[str, str]]:
        return [(x, f"INPUT -s {self.addr(y)} -m statistic --mode random --probability {probability:.4f} -j DROP")
                for x, y in ((a, b), (b, a))]

    def cut(self, src: str, dst: str, *, both: bool = True, undo: bool = False) -> None:
        """Drop every packet from ``src`` to ``dst`` (and back, unless ``both`` is False)."""
        self.apply(self.cut_rules(src, dst, both=both), undo=undo)

    def cut_port(self, src: str, dst: str, port: int, *, undo: bool = False) -> None:
        """Drop TCP from ``src`` to ``dst:port`` only (one service of a host, e.g. the witness's etcd)."""
        self.apply([(src, f"OUTPUT -p tcp -d {self.addr(dst)} --dport {port} -j DROP"),
                    (dst, f"INPUT -p tcp -s {self.addr(src)} --dport {port} -j DROP")], undo=undo)

    def loss(self, a: str, b: str, probability: float, *, undo: bool = False) -> None:
        """Drop a random share of the packets between ``a`` and ``b``, each direction independently."""
        self.apply(self.loss_rules(a, b, probability), undo=undo)

    def isolate(self, host: str) -> None:
        """Cut ``host`` from every other host (the peer and the LAN); the observer still sees it."""
        for other in self.hosts:
            if other != host:
                self.cut(host, other)

    def redirect(self, host: str, dst: str, port: int, to: tuple[str, int]) -> None:
        """New TCP connections from ``host`` to ``dst:port`` go to ``to`` instead (a proxy in the path)."""
        self._ipt(host, "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", self.addr(dst), "--dport", str(port),
                  "-j", "DNAT", "--to-destination", f"{to[0]}:{to[1]}")

    def heal(self) -> None:
        """Remove every network fault (filter and nat rules) on every host."""
        for host in self.hosts:
            self._ipt(host, "-F")
            self._ipt(host, "-t", "nat", "-F")

    def rules(self, host: str) -> str:
        return self.sh(host, "iptables", "-w", "-S").stdout

    # -- filesystems -------------------------------------------------------------------------
    def small_fs(self, path: Path, size: str = "8m") -> Path:
        """A size-limited tmpfs at ``path`` (under the run's base dir), unmounted at teardown."""
        assert self.base in path.parents, "lab mounts live under the run's base directory"
        path.mkdir(parents=True, exist_ok=True)
        run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", f"hs-lab-{self.run_id}", str(path)])
        self.mounts.append(path)
        return path

    @staticmethod
    def fill(path: Path) -> Path:
        """Fill the filesystem holding ``path`` to the last byte; returns the filler to delete later."""
        filler = path / "filler.bin"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            for size in (1 << 20, 65536, 4096, 1):
                with contextlib.suppress(OSError):
                    while True:
                        os.write(fd, b"\0" * size)
        finally:
            os.close(fd)
        return filler

    def image_fs(self, path: Path, size: str = "32M") -> Path:
        """An ext4 image loop-mounted at ``path`` with errors=remount-ro (for ``fs_error``)."""
        assert self.base in path.parents, "lab mounts live under the run's base directory"
        image = path.parent / f"{path.name}.img"
        path.mkdir(parents=True, exist_ok=True)
        run(["truncate", "-s", size, str(image)])
        run(["mkfs.ext4", "-q", "-F", str(image)])
        run(["mount", "-o", "loop,errors=remount-ro", str(image), str(path)])
        self.mounts.append(path)
        return image

    @staticmethod
    def fs_error(path: Path) -> None:
        """The disk under ``path`` fails: ext4 records an error and turns read-only at once, open
        files included (``mount -o remount,ro`` refuses while a database is open for writing)."""
        dev = Path(run(["findmnt", "-n", "-o", "SOURCE", str(path)]).stdout.strip()).name
        Path(f"/sys/fs/ext4/{dev}/trigger_fs_error").write_text("hotstandby lab: disk failure\n")

    def repair_fs(self, path: Path, image: Path) -> None:
        """What the operator does once the node is stopped: unmount, fsck, mount again."""
        run(["umount", str(path)])
        run(["e2fsck", "-fy", str(image)], check=False)  # exit 1: errors corrected
        run(["mount", "-o", "loop,errors=remount-ro", str(image), str(path)])
        options = run(["findmnt", "-n", "-o", "OPTIONS", str(path)]).stdout
        if not options.startswith("rw"):
            raise LabError(f"{path} still mounted {options.strip()} after the repair")


def _faketime_lib() -> str:
    lib = next((p for p in FAKETIME_LIBS if Path(p).exists()), None)
    if lib is None:
        raise LabError("libfaketime not found (apt-get install faketime)")
    return lib


def skewed_clock(offset: str) -> dict[str, str]:
    """Environment that shifts a process's clock by ``offset`` (libfaketime, e.g. "+600s"); the process
    itself is preloaded, so its pid is the program's own (the ``faketime`` wrapper would fork)."""
    return {"LD_PRELOAD": _faketime_lib(), "FAKETIME": offset, "FAKETIME_DONT_RESET": "1"}


def stepped_clock(offset_file: Path) -> dict[str, str]:
    """Environment for a process whose wall clock ``step_clock`` can step while it runs.

    libfaketime reads the offset from ``offset_file`` on every call (FAKETIME_NO_CACHE: its cache
    expires on the faked clock, so a step back would hide the next step for as long). Only the wall
    clock moves, as with an NTP step or ``date -s``: CLOCK_MONOTONIC stays true (FAKETIME_DONT_FAKE_
    MONOTONIC), so timers and timeouts are unaffected; FAKETIME_FORCE_MONOTONIC_FIX=0 then keeps
    libfaketime's condition-variable workaround from costing every thread start 0.1-0.7 s. (libfaketime
    0.9.10 then fails an absolute clock_nanosleep, i.e. Python's ``time.sleep``, with EINVAL; the node
    never calls it.)"""
    if not offset_file.exists():
        step_clock(offset_file, 0.0)
    return {"LD_PRELOAD": _faketime_lib(), "FAKETIME_TIMESTAMP_FILE": str(offset_file), "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_FORCE_MONOTONIC_FIX": "0", "FAKETIME_DONT_RESET": "1"}


def step_clock(offset_file: Path, seconds: float) -> None:
    """Set the wall clock of every process started with ``stepped_clock(offset_file)`` to true time +
    ``seconds`` (atomically: a reader never sees a half-written file)."""
    tmp = offset_file.with_name(offset_file.name + ".tmp")
    tmp.write_text(f"{seconds:+.3f}s\n")
    os.replace(tmp, offset_file)


@contextlib.contextmanager
def lab_run(hosts: tuple[str, ...] = HOSTS) -> Iterator[Lab]:
    """A lab for the duration of the block; torn down even when the block raises."""
    lab = Lab(hosts=hosts)
    try:
        yield lab.setup()
    finally:
        lab.teardown()


def wait_port(host: str, port: int, timeout: float) -> None:
    """Poll until a TCP connect to ``host:port`` succeeds (from the observer)."""
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise LabError(f"{host}:{port} not listening after {timeout:.0f} s")
