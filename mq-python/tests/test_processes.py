"""Worker processes: Rust <-> Python round trips, SIGTERM, and SIGKILL chaos."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mq
from conftest import ROOT, binary, wait_for
from helpers import dead_letters, xlen

HERE = Path(__file__).resolve().parent


def spawn(args, **kw) -> subprocess.Popen:
    env = dict(os.environ, MQ_LOG=os.environ.get("MQ_LOG", "warn"), RUST_LOG="warn")
    return subprocess.Popen([str(a) for a in args], env=env, **kw)


def stop(proc: subprocess.Popen, timeout: float = 30) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout)


def python_worker(server, consumer: str, concurrency: int = 16, reclaim: str = "30s"):
    return spawn([sys.executable, HERE / "chaos_worker.py", server.url, consumer, concurrency,
                  reclaim])


def drained(r, queue: str) -> bool:
    return xlen(r, queue) == 0 and r.zcard(f"mq:{{{queue}}}:delayed") == 0


def test_python_tasks_decode_into_a_rust_task_struct(server, r):
    """Dicts from Python are `Job` structs to the Rust jobs-worker; a wrong field type is
    dead-lettered by it with the decoder's reason, and the worker goes on."""
    producer = mq.Producer(server.url)
    producer.enqueue_many("jobs", [{"n": n, "sleep_ms": 0} for n in range(100)], name="Job")
    producer.enqueue("jobs", {"n": "seven", "sleep_ms": 0}, name="Job")
    worker = spawn([binary("jobs-worker"), "--url", server.url])
    try:
        wait_for(lambda: r.hlen("mq-examples:{jobs}:handled") == 100, 30, "100 jobs handled")
        wait_for(lambda: len(dead_letters(r, "jobs")) == 1, 30, "the bad one dead")
    finally:
        assert stop(worker) == 0
    handled = r.hgetall("mq-examples:{jobs}:handled")
    assert sorted(int(k) for k in handled) == list(range(100))
    (dead,) = dead_letters(r, "jobs")
    assert dead["error"].startswith("cannot decode Job payload"), dead["error"]


def vectors(r) -> dict:
    keys = sorted(r.scan_iter("mq-demo:vec:text:*", count=1000))
    return dict(zip(keys, r.mget(keys))) if keys else {}


def test_the_python_text_worker_stores_the_rust_workers_vectors_bit_for_bit(server, r):
    """The Rust producer's EmbedText tasks, handled once by examples/python/text_worker.py and
    once by the Rust text-worker: the same vector for every product, byte for byte."""
    produced = subprocess.run([binary("producer"), "--url", server.url], check=True,
                              capture_output=True, text=True, timeout=60)
    texts = xlen(r, "texts")
    assert texts > 1000, produced.stdout
    py = spawn([sys.executable, ROOT / "examples/python/text_worker.py", "--url", server.url])
    try:
        wait_for(lambda: drained(r, "texts"), 60, "the Python worker drained texts")
    finally:
        assert stop(py) == 0
    from_python = vectors(r)
    assert len(from_python) == texts
    assert dead_letters(r, "texts") == []
    r.delete(*from_python.keys())
    subprocess.run([binary("producer"), "--url", server.url], check=True, capture_output=True,
                   timeout=60)
    rust = spawn([binary("text-worker"), "--url", server.url])
    try:
        wait_for(lambda: drained(r, "texts"), 60, "the Rust worker drained texts")
    finally:
        assert stop(rust) == 0
    from_rust = vectors(r)
    assert from_rust.keys() == from_python.keys()
    differ = [k for k in from_rust if from_rust[k] != from_python[k]]
    assert differ == [], f"{len(differ)} of {len(from_rust)} vectors differ, e.g. {differ[:3]}"


def test_sigterm_finishes_running_tasks_and_hands_back_the_rest(server, r):
    producer = mq.Producer(server.url)
    producer.enqueue_many("chaos", [{"n": n, "sleep": 0.5} for n in range(40)])
    w = python_worker(server, "term", concurrency=4)
    try:
        wait_for(lambda: r.hlen("started") >= 4, 30, "4 tasks started")
    finally:
        t0 = time.monotonic()
        code = stop(w)
    assert code == 0, "a clean exit after SIGTERM"
    assert time.monotonic() - t0 < 10
    started = {int(k) for k in r.hkeys("started")}
    handled = {int(k) for k in r.hkeys("handled")}
    assert started == handled, "every task that started finished (grace period)"
    assert len(handled) < 40
    assert xlen(r, "chaos") == 40 - len(handled)
    # Fetched but not started: handed back, i.e. reclaimable at once by any worker (idle time
    # set past every reclaim timeout), their delivery not counted.
    held = r.xpending_range("mq:{chaos}:stream", "mq", "-", "+", 100)
    assert held, "the worker had buffered entries"
    for e in held:
        assert e["time_since_delivered"] > 86_400_000, e
        assert e["times_delivered"] == 0, e


def test_sigkill_of_a_python_worker_loses_nothing(server, r):
    """20,000 tasks, 3 Python worker processes (reclaim timeout 2 s); one SIGKILLed midway.
    Every task is handled; only the killed worker's in-flight tasks may run twice."""
    total = 20_000
    producer = mq.Producer(server.url)
    for start in range(0, total, 5_000):
        producer.enqueue_many("chaos", [{"n": n} for n in range(start, start + 5_000)])
    workers = [python_worker(server, f"w{i}", concurrency=16, reclaim="2s") for i in range(3)]
    try:
        wait_for(lambda: r.hlen("handled") >= total // 4, 120, "a quarter handled")
        workers[0].kill()
        workers[0].wait(10)
        killed_at = r.hlen("handled")
        wait_for(lambda: r.hlen("handled") == total and drained(r, "chaos"), 240,
                 "every task handled")
    finally:
        for w in workers[1:]:
            assert stop(w) == 0
    counts = [int(v) for v in r.hvals("handled")]
    twice = sum(c - 1 for c in counts)
    print(f"killed after {killed_at} of {total}; handled twice: {twice}")
    assert len(counts) == total
    assert twice <= 16 * 2, "at most the killed worker's in-flight (and buffered) tasks rerun"
    assert dead_letters(r, "chaos") == []
    assert r.xpending("mq:{chaos}:stream", "mq")["pending"] == 0
