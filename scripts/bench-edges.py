#!/usr/bin/env python3
"""How well `GET /health` holds up while the server is attacked at its edges.

Starts the given `coffer` binary on a free loopback port with a throwaway SQLite database, then
measures the latency of sequential `GET /health` requests (one keep-alive connection)
  - with nothing else going on (baseline),
  - while 8 clients send gzip bombs (32 MiB of spaces, about 32 KiB compressed) to
    `POST /api/register` as fast as they are answered,
  - while 200 connections each send their request head one byte per second (Slowloris),
and how long a client over its rate limit waits for its 429 with a gzip bomb, against a plain one.
Prints a Markdown table. Python standard library only.

    scripts/bench-edges.py --binary .build/release/coffer [--seconds 10]
"""
import argparse
import gzip
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary, extra):
        self.dir = tempfile.mkdtemp(prefix="coffer-bench-edges-")
        self.port = free_port()
        args = [binary, "serve", "--port", str(self.port), "--database", os.path.join(self.dir, "db.sqlite"), "--log-level", "error"] + extra
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("the server did not start")

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def health_latencies(port, seconds):
    """Milliseconds of each sequential GET /health over one keep-alive connection."""
    times = []
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    end = time.time() + seconds
    while time.time() < end:
        start = time.perf_counter()
        try:
            connection.request("GET", "/health")
            response = connection.getresponse()
            response.read()
        except OSError:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        times.append((time.perf_counter() - start) * 1000)
    return times


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


BOMB = gzip.compress(b" " * (32 << 20), compresslevel=9)


def send_bomb(port):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    start = time.perf_counter()
    connection.request("POST", "/api/register", body=BOMB, headers={"Content-Type": "application/json", "Content-Encoding": "gzip", "Connection": "close"})
    response = connection.getresponse()
    response.read()
    return response.status, (time.perf_counter() - start) * 1000


def bomb_flood(port, seconds, clients=8):
    stop = threading.Event()
    statuses = {}

    def run():
        while not stop.is_set():
            try:
                status, _ = send_bomb(port)
                statuses[status] = statuses.get(status, 0) + 1
            except OSError:
                statuses["error"] = statuses.get("error", 0) + 1

    threads = [threading.Thread(target=run, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    times = health_latencies(port, seconds)
    stop.set()
    for t in threads:
        t.join(60)
    return times, statuses


def slowloris(port, seconds, connections=200):
    stop = threading.Event()
    sockets = []
    for _ in range(connections):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /health HTTP/1.1\r\n")
        sockets.append(s)
    closed = {"count": 0}

    def drip():
        while not stop.is_set():
            for s in list(sockets):
                try:
                    s.sendall(b"X")
                except OSError:
                    sockets.remove(s)
                    closed["count"] += 1
            stop.wait(1)

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    times = health_latencies(port, seconds)
    stop.set()
    thread.join(5)
    for s in sockets:
        s.close()
    return times, closed["count"]


def row(name, times, note=""):
    return f"| {name} | {len(times)} | {statistics.median(times):.2f} | {percentile(times, 0.99):.2f} | {max(times):.2f} | {note} |"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--seconds", type=float, default=10)
    options = parser.parse_args()

    rows = ["| `GET /health` while … | requests | p50 ms | p99 ms | max ms | note |", "|---|---:|---:|---:|---:|---|"]
    generous = ["--rate-limit", "1000000/minute", "--register-rate-limit", "1000000/hour", "--login-rate-limit", "1000000/minute"]
    server = Server(options.binary, generous)
    try:
        rows.append(row("nothing else happens", health_latencies(server.port, options.seconds)))
        times, statuses = bomb_flood(server.port, options.seconds)
        rows.append(row("8 clients send gzip bombs", times, "bomb answers: " + ", ".join(f"{k}×{v}" for k, v in sorted(statuses.items(), key=str))))
        times, closed = slowloris(server.port, options.seconds)
        rows.append(row("200 connections send heads a byte a second", times, f"{closed} of 200 closed by the server within {options.seconds:.0f} s"))
    finally:
        server.stop()

    limited = Server(options.binary, ["--rate-limit", "1/hour", "--register-rate-limit", "1000000/hour", "--login-rate-limit", "1000000/minute"])
    try:
        c = http.client.HTTPConnection("127.0.0.1", limited.port, timeout=10)
        c.request("GET", "/api/sync/status")
        c.getresponse().read()
        bombs, plains = [], []
        for _ in range(20):
            status, ms = send_bomb(limited.port)
            bombs.append(ms)
            connection = http.client.HTTPConnection("127.0.0.1", limited.port, timeout=10)
            start = time.perf_counter()
            connection.request("POST", "/api/register", body=b"{}", headers={"Content-Type": "application/json", "Connection": "close"})
            connection.getresponse().read()
            plains.append((time.perf_counter() - start) * 1000)
        rows.append("")
        rows.append("| over the rate limit | requests | p50 ms | p99 ms | max ms | note |")
        rows.append("|---|---:|---:|---:|---:|---|")
        rows.append(row("429 for a gzip bomb", bombs, f"last status {status}"))
        rows.append(row("429 for a plain body", plains))
    finally:
        limited.stop()
    print("\n".join(rows))


if __name__ == "__main__":
    sys.exit(main())
