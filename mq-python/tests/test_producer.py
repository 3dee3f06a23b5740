"""The Python producer's options against a real Redis and a Python worker: unique keys,
tracked tasks (status and result), runs with a completion task; and what it refuses."""

from __future__ import annotations

import threading

import pytest

import mq
from conftest import wait_for
from helpers import running, xlen


def fast_worker(server, **kw) -> mq.Worker:
    kw.setdefault("concurrency", 8)
    return mq.Worker(server.url, block_timeout="200ms", grace_period="5s", **kw)


def test_a_unique_task_is_added_once_while_live_and_again_once_it_ended(server, r):
    producer = mq.Producer(server.url)
    first, added = producer.submit("uq", {"n": 1}, unique="product:7")
    assert added
    # Live (queued): refused, the live task's id returned, nothing written.
    assert producer.submit("uq", {"n": 2}, unique="product:7") == (first, False)
    assert producer.enqueue("uq", {"n": 3}, unique="product:7") == first
    assert xlen(r, "uq") == 1
    # Another key, and a delayed unique task, are added.
    other, added = producer.submit("uq", {"n": 4}, unique="product:8", delay="1h")
    assert added and other != first
    assert producer.submit("uq", {"n": 5}, unique="product:8")[1] is False

    seen = []
    worker = fast_worker(server)
    worker.task("uq")(lambda p: seen.append(p["n"]))
    with running(worker):
        wait_for(lambda: seen == [1] and xlen(r, "uq") == 0, 20, "the unique task ran")
        # Ended: the key is free again.
        again, added = producer.submit("uq", {"n": 6}, unique="product:7")
        assert added and again != first
        wait_for(lambda: seen == [1, 6], 20, "the second one ran")


def test_a_tracked_task_keeps_its_status_and_result(server, r):
    producer = mq.Producer(server.url)
    admin = mq.Admin(server.url)
    worker = fast_worker(server)

    @worker.task("tracked", result_ttl="1h")
    def double(payload):
        return {"doubled": payload["n"] * 2}

    task_id = producer.enqueue("tracked", {"n": 21}, result_ttl="1h")
    assert admin.status("tracked", task_id)["state"] == "queued"
    plain_id = producer.enqueue("tracked", {"n": 1})
    with running(worker):
        wait_for(lambda: admin.status("tracked", task_id)["state"] == "succeeded", 20,
                 "the tracked task succeeded")
        wait_for(lambda: xlen(r, "tracked") == 0, 10, "both acked")
    assert admin.result("tracked", task_id) == {"doubled": 42}
    ttl = r.pttl(f"mq:{{tracked}}:task:{task_id}")
    assert 0 < ttl <= 3_600_000
    # Untracked, as before: nothing is kept for it.
    assert admin.status("tracked", plain_id) == {"state": "unknown"}


def test_a_run_counts_its_tasks_and_enqueues_its_completion_task_once(server, r):
    producer = mq.Producer(server.url)
    admin = mq.Admin(server.url)
    run = producer.run("products-2026-12-07")
    assert run.name == "products-2026-12-07"
    ids = producer.enqueue_many("texts", [{"n": i} for i in range(250)], run=run)
    ids.append(producer.enqueue("images", {"n": 250}, name="EmbedImage", run=run))
    assert len(set(ids)) == 251
    info = admin.run("products-2026-12-07")
    assert (info["total"], info["done"], info["sealed"]) == (251, 0, None)
    assert run.seal("reports", {"run": run.name}, name="RunDone")
    # A second seal does nothing, and its completion task is dropped.
    assert not run.seal("reports", {"run": "twice"}, name="RunDone")

    lock = threading.Lock()
    handled, reports = [], []

    def handle(p):
        with lock:
            handled.append(p["n"])
        if p["n"] % 50 == 7:
            raise mq.Permanent("bad record")

    worker = fast_worker(server)
    worker.task("texts", max_retries=0)(handle)
    worker.task("images", name="EmbedImage", max_retries=0)(handle)
    worker.task("reports", name="RunDone")(lambda p: reports.append(p["run"]))
    with running(worker):
        wait_for(lambda: reports == ["products-2026-12-07"], 30, "the completion task ran")
        wait_for(lambda: xlen(r, "reports") == 0, 10, "the completion task was acked")
    info = admin.run("products-2026-12-07")
    assert (info["total"], info["done"], info["dead"], info["remaining"]) == (251, 246, 5, 0)
    assert info["ended"] is not None and info["sealed"] is not None
    assert sorted(handled) == list(range(251))
    assert reports == ["products-2026-12-07"]
    assert admin.run("no-such-run") is None


def test_the_producer_refuses_what_a_run_or_a_unique_key_cannot_be(server, r):
    producer = mq.Producer(server.url)
    run = producer.run("refusals")
    for kw in ({"delay": 5}, {"unique": "k"}, {"priority": "high"}):
        with pytest.raises(ValueError, match="cannot be delayed, prioritized or unique"):
            producer.enqueue("q", {"n": 1}, run=run, **kw)
    with pytest.raises(mq.MqError, match="unique key must not be empty"):
        producer.enqueue("q", {"n": 1}, unique="")
    with pytest.raises(ValueError, match="needs both queue and payload"):
        run.seal("reports")
    with pytest.raises(mq.MqError, match="run name"):
        producer.run("")
    with pytest.raises(TypeError):
        producer.enqueue("q", {"n": 1}, run="refusals")
    # Nothing was written by any of them, and the run counted nothing.
    assert xlen(r, "q") == 0
    assert mq.Admin(server.url).run("refusals")["total"] == 0
