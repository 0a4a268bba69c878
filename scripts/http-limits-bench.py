#!/usr/bin/env python3
"""HTTP limits of `stadion up`, outside `cargo test` (issue #12, "Limits" and "HTTP servers").

Measures, on one `stadion up` running one game server:
  1. the RSS of `stadion up` while N clients hold `GET /watch/gameserver` on the game's sidecar
     and never read, as the GameServer changes U times (each change is a new watch line);
  2. M half-open connections (TCP connect, no request) to the admin API: how many descriptors
     `stadion up` holds 1 s later, and how long until its descriptor count is back to baseline.

Usage (build first: `cargo build -p stadion --bin stadion`):
  scripts/http-limits-bench.py [--stadion target/debug/stadion] [--watchers 200] [--updates 3000]
                               [--half-open 1000] [--wait 30]
Stdlib only; Linux (/proc).
"""

import argparse
import json
import os
import pathlib
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kib(pid, field):
    text = pathlib.Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1))


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def get_json(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def wait_for(what, check, limit=60.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"timed out waiting for {what}")


def game_ports(marker):
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = dict(v.split("=", 1) for v in (entry / "environ").read_bytes().decode().split("\0") if "=" in v)
        except (OSError, UnicodeDecodeError):
            continue
        if env.get("STADION_BENCH_MARKER") == marker and "AGONES_SDK_HTTP_PORT" in env:
            return int(env["AGONES_SDK_HTTP_PORT"])
    return None


def request(port, method, path, body):
    """One HTTP/1.1 request on a fresh connection; returns the status code."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        data = body.encode()
        s.sendall(
            f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data
        )
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    return int(reply.split(b" ", 2)[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stadion", default=str(ROOT / "target/debug/stadion"))
    parser.add_argument("--watchers", type=int, default=200)
    parser.add_argument("--updates", type=int, default=3000)
    parser.add_argument("--half-open", type=int, default=1000)
    parser.add_argument("--wait", type=float, default=30.0, help="how long to wait for descriptors to return")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = pathlib.Path(tempfile.mkdtemp(prefix="stadion-http-bench-"))
    bindir = work / "bin"
    bindir.mkdir()
    (bindir / "stadion").symlink_to(pathlib.Path(args.stadion).resolve())
    fleet = (ROOT / "examples/fleet.yaml").read_text().replace("replicas: 3", "replicas: 1")
    (work / "fleet.yaml").write_text(fleet)
    admin = free_port()
    marker = f"bench-{os.getpid()}"
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", STADION_BENCH_MARKER=marker, RUST_LOG="warn")
    log = open(work / "up.log", "w")
    up = subprocess.Popen(
        [str(bindir / "stadion"), "up", "--admin-addr", f"127.0.0.1:{admin}", str(work / "fleet.yaml")],
        env=env, stdout=log, stderr=log,
    )
    rows = []
    try:
        base = f"http://127.0.0.1:{admin}"
        wait_for("a Ready server", lambda: any(g["state"] == "Ready" for g in get_json(f"{base}/api/gameservers")))
        sdk = wait_for("the sidecar's port", lambda: game_ports(marker))
        time.sleep(1)
        rss_idle = status_kib(up.pid, "VmRSS")

        # 1. Unread watchers.
        watchers = []
        for _ in range(args.watchers):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", sdk))
            s.sendall(b"GET /watch/gameserver HTTP/1.1\r\nHost: x\r\n\r\n")
            watchers.append(s)
        time.sleep(1)
        filler = "x" * 4000
        assert request(sdk, "PUT", "/metadata/annotation", json.dumps({"key": "filler", "value": filler})) == 200
        started = time.monotonic()
        for n in range(args.updates):
            status = request(sdk, "PUT", "/metadata/label", json.dumps({"key": "n", "value": str(n)}))
            if status != 200:
                sys.exit(f"update {n}: HTTP {status}")
        took = time.monotonic() - started
        time.sleep(2)
        rss_watch = status_kib(up.pid, "VmRSS")
        rows.append((f"RSS, idle (1 server)", f"{rss_idle / 1024:.1f} MiB"))
        rows.append((f"RSS, {args.watchers} unread watchers after {args.updates} changes ({took:.1f} s)",
                     f"{rss_watch / 1024:.1f} MiB (+{(rss_watch - rss_idle) / 1024:.1f} MiB)"))
        rows.append(("peak RSS (VmHWM)", f"{status_kib(up.pid, 'VmHWM') / 1024:.1f} MiB"))
        for s in watchers:
            s.close()
        time.sleep(2)

        # 2. Half-open connections.
        baseline = fds(up.pid)
        held = []
        for _ in range(args.half_open):
            held.append(socket.create_connection(("127.0.0.1", admin)))
        time.sleep(1)
        rows.append((f"descriptors of `stadion up`, baseline / 1 s after {args.half_open} half-open connections",
                     f"{baseline} / {fds(up.pid)}"))
        opened = time.monotonic()
        back = None
        while time.monotonic() - opened < args.wait:
            if fds(up.pid) <= baseline + 5:
                back = time.monotonic() - opened + 1
                break
            time.sleep(0.2)
        closed_by_server = 0
        for s in held:
            s.setblocking(False)
            try:
                closed_by_server += s.recv(1) == b""
            except BlockingIOError:
                pass
            except OSError:
                closed_by_server += 1
            s.close()
        rows.append(("descriptors back to baseline after",
                     f"{back:.1f} s" if back is not None else f"not within {args.wait:.0f} s ({fds(up.pid)} held)"))
        rows.append(("half-open connections closed by the server", f"{closed_by_server} / {args.half_open}"))
    finally:
        up.terminate()
        try:
            up.wait(timeout=20)
        except subprocess.TimeoutExpired:
            up.kill()
        shutil.rmtree(work, ignore_errors=True)

    width = max(len(r[0]) for r in rows)
    print(f"stadion: {args.stadion}")
    print(f"| {'measurement'.ljust(width)} | value |")
    print(f"|{'-' * (width + 2)}|-------|")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")


if __name__ == "__main__":
    main()
