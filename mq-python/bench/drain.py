#!/usr/bin/env python3
"""Drain benchmark of no-op Python handlers: mq (sync, async and batch handlers), the `bullmq`
Python package and Celery, each against its own fresh redis-server, in one run.

Each contender runs in a subprocess of its own: N tasks are enqueued first, then one worker
process drains them; the time from the worker's start to an empty queue gives tasks/s, and
the worker process's peak RSS is reported. With ``--rust`` the Rust ``mq-bench`` (release)
runs too, whose output also has Redis's own ceiling (a bare XREADGROUP/XACK loop).

    python3 mq-python/bench/drain.py --tasks 20000            # mq's three handler kinds
    target/benchenv/bin/python mq-python/bench/drain.py --tasks 20000 --all --rust

``--all`` needs ``pip install bullmq celery`` and the ``mq`` package in the same Python.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONCURRENCY = 64


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis():
    import redis

    port = free_port()
    d = tempfile.mkdtemp(prefix="mq-bench-")
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", d],
                            stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(500):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.01)
    return proc, d, f"redis://127.0.0.1:{port}/", client


def wait_empty(cond, limit: float = 600) -> None:
    deadline = time.monotonic() + limit
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit("timed out draining")
        time.sleep(0.005)


# --- contenders: each enqueues, then (in this same subprocess) drains -------------------

def run_mq(url: str, client, n: int, kind: str) -> float:
    import threading

    import mq

    producer = mq.Producer(url)
    for start in range(0, n, 10_000):
        producer.enqueue_many("bench", [{"n": i} for i in range(start, min(n, start + 10_000))])
    worker = mq.Worker(url, concurrency=CONCURRENCY, block_timeout="100ms")
    if kind == "batch":
        worker.batch("bench", max_size=CONCURRENCY, max_wait_ms=2)(lambda ps: None)
    elif kind == "async":
        async def noop(payload):
            return None

        worker.task("bench")(noop)
    else:
        worker.task("bench")(lambda p: None)
    t0 = time.monotonic()
    th = threading.Thread(target=worker.run, daemon=True)
    th.start()
    wait_empty(lambda: client.xlen("mq:{bench}:stream") == 0)
    took = time.monotonic() - t0
    worker.stop()
    th.join(30)
    return took


def run_bullmq(url: str, client, n: int) -> float:
    import asyncio

    from bullmq import Queue, Worker

    async def go() -> float:
        queue = Queue("bench", {"connection": url})
        for start in range(0, n, 1_000):
            await queue.addBulk([{"name": "t", "data": {"n": i},
                                  "opts": {"removeOnComplete": True}}
                                 for i in range(start, min(n, start + 1_000))])

        async def process(job, token):
            return None

        t0 = time.monotonic()
        worker = Worker("bench", process, {"connection": url, "concurrency": CONCURRENCY})
        while True:
            counts = await queue.getJobCounts("wait", "active", "delayed")
            if sum(counts.values()) == 0:
                break
            await asyncio.sleep(0.005)
        took = time.monotonic() - t0
        await worker.close()
        await queue.close()
        return took

    return asyncio.run(go())


def run_celery(url: str, client, n: int) -> float:
    sys.path.insert(0, str(Path(__file__).parent))
    os.environ["MQ_BENCH_BROKER"] = url
    import celery_app

    with celery_app.app.connection_for_write() as conn:
        with conn.Producer() as prod:
            for i in range(n):
                celery_app.noop.apply_async((i,), producer=prod, ignore_result=True)
    t0 = time.monotonic()
    w = subprocess.Popen([sys.executable, "-m", "celery", "-A", "celery_app", "worker",
                          "--pool", "threads", "--concurrency", str(CONCURRENCY),
                          "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
                          "--without-heartbeat", "--prefetch-multiplier", "4"],
                         cwd=Path(__file__).parent, env=dict(os.environ))
    wait_empty(lambda: client.llen("celery") == 0 and client.hlen("unacked") == 0)
    took = time.monotonic() - t0
    w.terminate()
    w.wait(30)
    return took


def one(kind: str, n: int) -> None:
    proc, d, url, client = start_redis()
    try:
        took = {"mq-sync": lambda: run_mq(url, client, n, "sync"),
                "mq-async": lambda: run_mq(url, client, n, "async"),
                "mq-batch": lambda: run_mq(url, client, n, "batch"),
                "bullmq": lambda: run_bullmq(url, client, n),
                "celery": lambda: run_celery(url, client, n)}[kind]()
    finally:
        proc.kill()
        shutil.rmtree(d, ignore_errors=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if kind == "celery":
        rss = max(child, 0)  # the worker is the child process (redis-server is too, smaller)
    print(f"{kind:9} tasks={n} drain_s={took:.2f} tasks_per_s={n / took:,.0f} rss_mb={rss:.1f}",
          flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=20_000)
    ap.add_argument("--all", action="store_true", help="also bullmq and celery")
    ap.add_argument("--rust", action="store_true", help="also the Rust mq-bench (release)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        return one(args.one, args.tasks)
    kinds = ["mq-sync", "mq-async", "mq-batch"] + (["bullmq", "celery"] if args.all else [])
    for kind in kinds:
        subprocess.run([sys.executable, __file__, "--one", kind, "--tasks", str(args.tasks)],
                       check=True)
    if args.rust:
        exe = ROOT / "target/release/mq-bench"
        subprocess.run([str(exe), "--tasks", str(args.tasks)], check=True)


if __name__ == "__main__":
    main()
