"""Webhook ingest under load: accepted deliveries/s and time-to-202, with durability on.

Runs `bot serve` on loopback and drives it with wrk (32 connections, signed ~37 KB
`issue_comment` payloads, a unique delivery id per request); then kills the server with SIGKILL
and counts the stored rows, so the figure is only reported if every 202 survived. In the same run
it measures a Probot app that stores nothing (npm's `probot`), the peer named in the target, and
the bot's idle RSS.

    python bench/webhook_ingest.py [--duration 15] [--connections 32] [--skip-probot]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-webhook-secret-0123456789"  # noqa: S105 (a throwaway for loopback)
PAYLOAD_FILE = ROOT / "tests" / "fixtures" / "issue_comment.created.json"
PROBOT_DIR = ROOT / "var" / "bench" / "probot"
PROBOT_VERSION = "14.3.2"

LUA = r"""
local counter = 0
local threads = {}
accepted = 0
other = 0
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  prefix = "bench-" .. args[1] .. "-" .. id .. "-"
  accepted = 0
  other = 0
end
function request()
  counter = counter + 1
  wrk.headers["X-GitHub-Delivery"] = prefix .. counter
  return wrk.format("POST", nil, nil, wrk.body)
end
function response(status, headers, body)
  if status == 202 or status == 200 then accepted = accepted + 1 else other = other + 1 end
end
function done(summary, latency, requests)
  local ok, bad = 0, 0
  for _, t in ipairs(threads) do
    ok = ok + t:get("accepted")
    bad = bad + t:get("other")
  end
  io.write(string.format(
    "RESULT {\"requests\": %d, \"accepted\": %d, \"rejected\": %d, \"errors\": %d," ..
    " \"seconds\": %.3f, \"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f}\n",
    summary.requests, ok, bad,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3))
end
"""


def make_body(target_bytes: int = 37_000) -> bytes:
    payload = json.loads(PAYLOAD_FILE.read_text())
    payload["installation"] = {"id": 1}
    base = len(json.dumps(payload).encode())
    paragraph = (
        "This comment quotes a long traceback and a diff, as reviewers often do. "
        "It mentions no bot command, so the handlers read it and do nothing.\n"
    )
    payload["comment"]["body"] = paragraph * max(1, (target_bytes - base) // len(paragraph))
    return json.dumps(payload).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 (loopback only)
                return
        except OSError as exc:
            if getattr(exc, "code", None):  # an HTTP error answer: the server is up
                return
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up within {timeout} s")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_wrk(url: str, body: bytes, run_tag: str, *, duration: int, connections: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "ingest.lua"
        signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        script.write_text(
            f'wrk.method = "POST"\nwrk.body = [==[{body.decode()}]==]\n'
            f'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["X-GitHub-Event"] = "issue_comment"\n'
            f'wrk.headers["X-Hub-Signature-256"] = "{signature}"\n' + LUA
        )
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{duration}s",
                "--timeout",
                "10s",
                "-s",
                str(script),
                url,
                "--",
                run_tag,
            ],
            capture_output=True,
            text=True,
        )
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed: {out.stderr.strip() or out.stdout.strip()}")
    out = out.stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    result["per_second"] = result["accepted"] / result["seconds"]
    return result


def bench_bot(body: bytes, args: argparse.Namespace) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-bot-"))
    database = tmp / "bot.sqlite3"
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp),
        "GITHUB_WEBHOOK_SECRET": SECRET,
        "BOT_DATABASE": str(database),
        "BOT_LOG_LEVEL": "WARNING",
        "BOT_LOG_FORMAT": "json",
    }
    command = [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        time.sleep(1.0)
        idle = rss_mb(server.pid)
        result = run_wrk(
            f"http://127.0.0.1:{port}/webhook",
            body,
            "bot",
            duration=args.duration,
            connections=args.connections,
        )
        result["loaded_rss_mb"] = rss_mb(server.pid)
        with sqlite3.connect(database) as conn:  # a reader beside the live server (WAL)
            result["processed"] = conn.execute(
                "SELECT COUNT(*) FROM deliveries WHERE status IN ('done', 'failed')"
            ).fetchone()[0]
        server.send_signal(signal.SIGKILL)
        server.wait()
        with sqlite3.connect(database) as conn:
            stored = conn.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]
        result["idle_rss_mb"] = idle
        result["stored_after_kill"] = stored
        result["durable"] = stored >= result["accepted"]
        return result
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_probot() -> Path | None:
    binary = PROBOT_DIR / "node_modules" / ".bin" / "probot"
    if binary.exists():
        return binary
    if shutil.which("npm") is None:
        return None
    PROBOT_DIR.mkdir(parents=True, exist_ok=True)
    (PROBOT_DIR / "package.json").write_text(
        json.dumps({"name": "probot-baseline", "private": True, "type": "commonjs"})
    )
    (PROBOT_DIR / "app.js").write_text(
        'module.exports = (app) => {\n  app.on("issue_comment.created", async () => {});\n};\n'
    )
    subprocess.run(
        ["npm", "install", "--silent", "--no-audit", "--no-fund", f"probot@{PROBOT_VERSION}"],
        cwd=PROBOT_DIR,
        check=True,
    )
    return binary if binary.exists() else None


def bench_probot(body: bytes, args: argparse.Namespace) -> dict | None:
    binary = ensure_probot()
    if binary is None:
        return None
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(PROBOT_DIR),
        "APP_ID": "1",
        "PRIVATE_KEY": pem,
        "WEBHOOK_SECRET": SECRET,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "LOG_LEVEL": "warn",
        "NODE_ENV": "production",
    }
    server = subprocess.Popen(
        [str(binary), "run", "./app.js"],
        cwd=PROBOT_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/")
        time.sleep(1.0)
        idle = rss_mb(server.pid)
        result = run_wrk(
            f"http://127.0.0.1:{port}/api/github/webhooks",
            body,
            "probot",
            duration=args.duration,
            connections=args.connections,
        )
        result["idle_rss_mb"] = idle
        return result
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--skip-probot", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    body = make_body()
    print(f"payload: {len(body)} bytes, {args.connections} connections, {args.duration} s each")
    bot = bench_bot(body, args)
    probot = None if args.skip_probot else bench_probot(body, args)

    def line(name: str, r: dict) -> str:
        return (
            f"{name:<8} {r['per_second']:>8.0f}/s  p50 {r['p50_ms']:>6.2f} ms"
            f"  p99 {r['p99_ms']:>6.2f} ms  max {r['max_ms']:>7.2f} ms"
            f"  accepted {r['accepted']}  rejected {r['rejected']}  errors {r['errors']}"
            f"  idle RSS {r['idle_rss_mb']:.1f} MB"
        )

    print(line("bot", bot))
    print(
        f"         durable: {bot['stored_after_kill']} rows after SIGKILL for"
        f" {bot['accepted']} accepted -> {'OK' if bot['durable'] else 'LOST DELIVERIES'}"
        f"; RSS under load {bot['loaded_rss_mb']:.1f} MB"
    )
    print(
        f"         handled by the worker when the load stopped: {bot['processed']}"
        f" of {bot['stored_after_kill']}"
    )
    if probot:
        print(line("probot", probot))
        print(
            f"ratio bot/probot: throughput {bot['per_second'] / probot['per_second']:.2f}x,"
            f" p99 {bot['p99_ms'] / probot['p99_ms']:.2f}x"
        )
    else:
        print("probot: not measured (npm unavailable or --skip-probot)")
    target_ok = bot["per_second"] >= 3000 and bot["p99_ms"] <= 25 and bot["durable"]
    print(f"target (>= 3000/s, p99 <= 25 ms, durable): {'met' if target_ok else 'NOT met'}")
    print(f"idle RSS target (<= 80 MB): {'met' if bot['idle_rss_mb'] <= 80 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
