"""The Python worker against a real Redis: handlers, outcomes, batches, async, bad payloads."""

from __future__ import annotations

import threading
import time

import msgpack
import pytest

import mq
from conftest import wait_for
from helpers import dead_letters, running, xlen


def fast_worker(server, **kw) -> mq.Worker:
    kw.setdefault("concurrency", 16)
    return mq.Worker(server.url, block_timeout="200ms", grace_period="5s", **kw)


def test_sync_handler_gets_payload_and_context(server, r):
    producer = mq.Producer(server.url)
    worker = fast_worker(server)
    seen = []

    @worker.task("texts")
    def embed(payload, ctx):
        seen.append((payload, ctx.queue, ctx.name, ctx.attempt, ctx.id))

    ids = producer.enqueue_many(
        "texts", [{"product_id": i, "text": f"t{i}", "tags": [1, 2.5, None], "raw": b"\x00\xff"}
                  for i in range(50)],
        name="EmbedText",
    )
    assert len(ids) == 50 and len(set(ids)) == 50
    with running(worker):
        wait_for(lambda: len(seen) == 50, 20, "50 tasks handled")
        wait_for(lambda: xlen(r, "texts") == 0, 10, "all acked")
    assert sorted(s[0]["product_id"] for s in seen) == list(range(50))
    payload, queue, name, attempt, task_id = next(s for s in seen if s[0]["product_id"] == 3)
    assert payload == {"product_id": 3, "text": "t3", "tags": [1, 2.5, None], "raw": b"\x00\xff"}
    assert (queue, name, attempt) == ("texts", "EmbedText", 0)
    assert task_id in ids


def test_a_handler_of_one_name_leaves_others_to_the_dead_letters(server, r):
    producer = mq.Producer(server.url)
    worker = fast_worker(server)
    got = []
    worker.task("q", name="A")(lambda p: got.append(p["n"]))
    producer.enqueue("q", {"n": 1}, name="A")
    producer.enqueue("q", {"n": 2}, name="B")
    with running(worker):
        wait_for(lambda: got == [1] and len(dead_letters(r, "q")) == 1, 20, "A ran, B dead")
    (dead,) = dead_letters(r, "q")
    assert dead["error"] == 'unknown task name "B"'


def test_exceptions_retry_then_dead_letter_with_the_reason(server, r):
    producer = mq.Producer(server.url)
    worker = fast_worker(server)
    attempts = []

    @worker.task("flaky", max_retries=2, backoff="fixed(10ms)")
    def flaky(payload, ctx):
        attempts.append((ctx.attempt, ctx.last_error))
        raise ValueError(f"bad record {payload['n']}")

    @worker.task("perm", max_retries=5, backoff="fixed(10ms)")
    def perm(payload):
        raise mq.Permanent("no such product")

    producer.enqueue("flaky", {"n": 7})
    producer.enqueue("perm", {"n": 8})
    with running(worker):
        wait_for(lambda: len(dead_letters(r, "flaky")) == 1 and len(dead_letters(r, "perm")) == 1,
                 20, "both dead")
    assert [a for a, _ in attempts] == [0, 1, 2]
    assert attempts[1][1] == "ValueError: bad record 7"
    assert dead_letters(r, "flaky")[0]["error"] == "retries exhausted: ValueError: bad record 7"
    (perm_dead,) = dead_letters(r, "perm")
    assert perm_dead["error"] == "permanent failure: no such product"
    assert perm_dead["attempts"] == "1", "Permanent is not retried"


def test_retry_after_and_snooze(server, r):
    producer = mq.Producer(server.url)
    worker = fast_worker(server)
    runs = {"retry": [], "snooze": []}

    @worker.task("later", max_retries=3, backoff="fixed(10m)")
    def later(payload, ctx):
        runs[payload["kind"]].append((time.monotonic(), ctx.attempt))
        if len(runs[payload["kind"]]) == 1:
            if payload["kind"] == "retry":
                raise mq.Retry("not yet", after=0.5)
            raise mq.Snooze(after="500ms")

    producer.enqueue("later", {"kind": "retry"})
    producer.enqueue("later", {"kind": "snooze"})
    with running(worker):
        wait_for(lambda: all(len(v) == 2 for v in runs.values()), 20, "both ran twice")
    for kind, ((t0, a0), (t1, a1)) in runs.items():
        assert t1 - t0 >= 0.45, f"{kind} came back after its `after`, not the 10 min backoff"
        assert t1 - t0 < 60
        assert a0 == 0
    assert runs["retry"][1][1] == 1, "Retry counts an attempt"
    assert runs["snooze"][1][1] == 0, "Snooze does not"


def test_payloads_that_are_not_maps_are_dead_lettered_not_run(server, r):
    worker = fast_worker(server)
    ran = []
    worker.task("raw")(lambda p: ran.append(p))
    # Written as another language would, in the hand-writable v1 form (README).
    for payload in (msgpack.packb(5), msgpack.packb([1, 2]), b"\xc1"):
        r.xadd("mq:{raw}:stream", {"id": "x", "name": "raw", "payload": payload,
                                    "attempt": "0", "enqueued_at": "0"})
    with running(worker):
        wait_for(lambda: len(dead_letters(r, "raw")) == 3, 20, "three dead letters")
    reasons = sorted(d["error"] for d in dead_letters(r, "raw"))
    assert ran == []
    assert any("not a MessagePack map (a dict) but an integer" in e for e in reasons), reasons
    assert any("not a MessagePack map (a dict) but an array" in e for e in reasons), reasons
    assert all(e.startswith("cannot decode raw payload") for e in reasons), reasons


def test_the_producer_refuses_what_is_not_a_dict_and_sends_nothing(server, r):
    producer = mq.Producer(server.url)
    with pytest.raises(TypeError, match="a payload is a dict"):
        producer.enqueue("q", [1, 2])
    with pytest.raises(TypeError, match="cannot be encoded"):
        producer.enqueue("q", {"x": object()})
    with pytest.raises(TypeError):
        producer.enqueue_many("q", [{"ok": 1}, "no"])
    with pytest.raises(mq.MqError, match="queue"):
        producer.enqueue("bad{name}", {"x": 1})
    with pytest.raises(ValueError, match="bad duration"):
        producer.enqueue("q", {"x": 1}, delay="soon")
    with pytest.raises(ValueError, match="bad priority"):
        producer.enqueue("q", {"x": 1}, priority="urgent")
    assert r.keys("mq:*") == [] or xlen(r, "q") == 0


def test_bad_worker_options_are_refused(server):
    worker = fast_worker(server)
    with pytest.raises(ValueError, match="bad backoff"):
        worker.task("q", backoff="linear(1s)")(lambda p: None)
    with pytest.raises(ValueError, match="max_size"):
        worker.batch("q", max_size=0)(lambda ps: None)
    empty = fast_worker(server)
    with pytest.raises(mq.MqError, match="no handlers"):
        empty.run()


def test_delayed_tasks_wait(server, r):
    producer = mq.Producer(server.url)
    worker = fast_worker(server)
    ran = []
    worker.task("d")(lambda p: ran.append(time.monotonic()))
    t0 = time.monotonic()
    producer.enqueue("d", {"x": 1}, delay=0.6)
    with running(worker):
        wait_for(lambda: ran, 20, "the delayed task ran")
    assert ran[0] - t0 >= 0.55


def test_batches_hold_at_most_max_size_and_fail_only_the_failed(server, r):
    producer = mq.Producer(server.url)
    worker = fast_worker(server, concurrency=64)
    sizes = []
    done = []

    @worker.batch("emb", max_size=8, max_wait_ms=50, max_retries=0)
    def embed_many(payloads, ctxs):
        sizes.append(len(payloads))
        assert [c.queue for c in ctxs] == ["emb"] * len(payloads)
        out = []
        for p in payloads:
            if p["n"] % 10 == 0:
                out.append(mq.Permanent(f"n={p['n']}"))
            else:
                done.append(p["n"])
                out.append(None)
        return out

    producer.enqueue_many("emb", [{"n": n} for n in range(1, 201)])
    with running(worker):
        wait_for(lambda: len(done) == 180 and len(dead_letters(r, "emb")) == 20, 30,
                 "180 done, 20 dead")
        wait_for(lambda: xlen(r, "emb") == 0, 10, "all acked")
    assert max(sizes) <= 8
    assert max(sizes) > 1, f"tasks were batched: {sizes}"
    assert sorted(d["error"] for d in dead_letters(r, "emb")) == sorted(
        f"permanent failure: n={n}" for n in range(10, 201, 10))


def test_a_batch_handler_returning_the_wrong_count_retries_the_batch(server, r):
    producer = mq.Producer(server.url)
    worker = fast_worker(server)
    worker.batch("wrong", max_size=4, max_retries=0)(lambda ps: [None])
    producer.enqueue_many("wrong", [{"n": n} for n in range(4)])
    with running(worker):
        wait_for(lambda: len(dead_letters(r, "wrong")) == 4, 20, "4 dead")
    errors = {d["error"] for d in dead_letters(r, "wrong")}
    assert all(e.startswith("retries exhausted: batch handler returned 1 outcomes for ")
               for e in errors), errors


def test_async_handlers_run_on_the_workers_loop(server, r):
    import asyncio

    producer = mq.Producer(server.url)
    worker = fast_worker(server, concurrency=50)
    running_now = []
    peak = []
    done = []

    @worker.task("aio")
    async def handle(payload, ctx):
        running_now.append(1)
        peak.append(len(running_now))
        await asyncio.sleep(0.2)
        running_now.pop()
        done.append(payload["n"])

    producer.enqueue_many("aio", [{"n": n} for n in range(50)])
    t0 = time.monotonic()
    with running(worker):
        wait_for(lambda: len(done) == 50, 20, "50 async tasks")
    took = time.monotonic() - t0
    assert max(peak) > 10, f"coroutines overlapped (peak {max(peak)})"
    print(f"50 async tasks of 200 ms in {took:.2f} s, peak {max(peak)} at once")


def test_async_timeout_cancels_the_coroutine(server, r):
    import asyncio

    producer = mq.Producer(server.url)
    worker = fast_worker(server)
    cancelled = threading.Event()

    @worker.task("slow", timeout="300ms", max_retries=0)
    async def slow(payload):
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    producer.enqueue("slow", {"x": 1})
    with running(worker):
        wait_for(lambda: len(dead_letters(r, "slow")) == 1, 20, "timed out, dead")
        wait_for(cancelled.is_set, 10, "the coroutine was cancelled")
    assert "timed out" in dead_letters(r, "slow")[0]["error"]


def test_a_handler_holding_the_gil_past_the_lease_keeps_its_task(server, r):
    """Reclaim timeout 1 s, a handler spinning in Python (holding the GIL but for the
    interpreter's switch interval) for 3.5 s: the lease is renewed by a Rust thread, so the
    other worker never takes the task over and it runs exactly once."""
    producer = mq.Producer(server.url)
    runs = []

    def spin(payload, ctx):
        runs.append(ctx.entry_id)
        end = time.monotonic() + payload["secs"]
        x = 0
        while time.monotonic() < end:
            x += 1

    a = fast_worker(server, consumer="a", reclaim_timeout="1s")
    b = fast_worker(server, consumer="b", reclaim_timeout="1s")
    a.task("gil")(spin)
    b.task("gil")(spin)
    producer.enqueue("gil", {"secs": 3.5})
    with running(a, b):
        wait_for(lambda: runs, 10, "the task started")
        wait_for(lambda: xlen(r, "gil") == 0, 20, "acked")
    assert len(runs) == 1, f"ran {len(runs)} times: the lease was lost"
    pending = r.xpending("mq:{gil}:stream", "mq")
    assert pending["pending"] == 0


def test_stop_from_a_handler_ends_run(server, r):
    producer = mq.Producer(server.url)
    worker = fast_worker(server)
    done = []

    @worker.task("s")
    def handle(payload):
        done.append(1)
        worker.stop()

    producer.enqueue("s", {"x": 1})
    t = threading.Thread(target=worker.run, daemon=True)
    t.start()
    t.join(20)
    assert not t.is_alive(), "run() returned after stop() from the handler"
    assert done == [1]
    wait_for(lambda: xlen(r, "s") == 0, 10, "the task was acked")


def test_admin_reads_dead_letters_replays_them_and_reads_results(server, r):
    producer = mq.Producer(server.url)
    admin = mq.Admin(server.url)
    fail = {"on": True}
    worker = fast_worker(server)

    @worker.task("adm", max_retries=0, result_ttl="1h")
    def handle(payload):
        if fail["on"]:
            raise mq.Permanent(f"refused {payload['n']}")
        return {"doubled": payload["n"] * 2}

    task_id = producer.enqueue("adm", {"n": 21})
    with running(worker):
        wait_for(lambda: admin.stats("adm")["dead"] == 1, 20, "dead")
        (letter,) = admin.dead("adm")
        assert letter["id"] == task_id
        assert letter["payload"] == {"n": 21}
        assert letter["error"] == "permanent failure: refused 21"
        # Enqueued without result_ttl, the task is not tracked: no status is kept.
        assert admin.status("adm", task_id) == {"state": "unknown"}
        fail["on"] = False
        assert admin.replay("adm", [letter["dead_id"]]) == 1
        wait_for(lambda: admin.stats("adm")["length"] == 0 and admin.stats("adm")["dead"] == 0,
                 20, "replayed and handled")
    assert admin.result("adm", task_id) is None
    assert admin.stats("adm")["dead"] == 0
    assert "adm" in admin.queues()
    assert admin.status("adm", "no-such-id") == {"state": "unknown"}
    assert admin.replay("adm", ["0-1"]) == 0


def test_progress_is_readable_throttled_and_refused_after_the_end(server, r):
    producer = mq.Producer(server.url)
    admin = mq.Admin(server.url)
    worker = fast_worker(server)
    kept = []
    errors = []

    @worker.task("prog")
    def handle(payload, ctx):
        try:
            ctx.progress(object())
        except TypeError as e:
            errors.append(str(e))
        for i in range(1, 101):
            ctx.progress({"done": i, "of": 100})
        kept.append(ctx)

    r.config_resetstat()
    task_id = producer.enqueue("prog", {"n": 1})
    with running(worker):
        wait_for(lambda: xlen(r, "prog") == 0 and kept, 20, "the task was acked")
        # The last of a second's 100 reports is written when the attempt ends.
        wait_for(lambda: admin.progress("prog", task_id) == {"done": 100, "of": 100}, 10,
                 "the last progress")
        # Throttled: the first report's write and the end's, not 100 writes.
        hsets = r.info("commandstats").get("cmdstat_hset", {}).get("calls", 0)
        assert 1 <= hsets <= 3, hsets
        kept[0].progress({"done": -1})
        time.sleep(1.5)
        assert admin.progress("prog", task_id) == {"done": 100, "of": 100}
    assert len(errors) == 1 and "does not convert to JSON" in errors[0], errors
    assert admin.progress("prog", "no-such-id") is None


def test_flows_run_the_parent_once_after_its_children_and_follow_the_policy(server, r):
    producer = mq.Producer(server.url)
    admin = mq.Admin(server.url)
    worker = fast_worker(server)
    ended = []
    parents = []

    @worker.task("embed", max_retries=0, result_ttl="1h")
    def embed(payload, ctx):
        if payload.get("fail"):
            raise mq.Permanent("no pixels")
        time.sleep(0.05)
        ended.append(payload["n"])
        return {"n": payload["n"]}

    @worker.task("index")
    def index(payload, ctx):
        # Every child ended before the parent runs.
        parents.append((payload["product"], sorted(ended), ctx.children, ctx.failed_children,
                        [admin.result(c["queue"], c["id"]) for c in ctx.children]))

    parent_id, child_ids = (producer.flow("index", {"product": 1})
                            .child("embed", {"n": 1}, result_ttl="1h")
                            .child("embed", {"n": 2}, result_ttl="1h")
                            .enqueue())
    assert len(child_ids) == 2 and parent_id not in child_ids
    # Policy "always": runs with the dead child listed; the default policy dead-letters
    # the parent instead, naming the child.
    _, (ok_id, bad_id) = (producer.flow("index", {"product": 2}, policy="always")
                          .child("embed", {"n": 3})
                          .child("embed", {"n": 4, "fail": True})
                          .enqueue())
    dead_parent, _ = (producer.flow("index", {"product": 3})
                      .child("embed", {"n": 5, "fail": True})
                      .enqueue())
    with pytest.raises(ValueError, match="policy"):
        producer.flow("index", {"product": 4}, policy="sometimes")
    with pytest.raises(mq.MqError, match="child"):
        producer.flow("index", {"product": 5}).enqueue()
    with running(worker):
        wait_for(lambda: len(parents) == 2 and admin.stats("index")["dead"] == 1, 30,
                 "two parents ran, one dead-lettered")
        time.sleep(0.5)
    assert len(parents) == 2
    by_product = {p[0]: p for p in parents}
    _, seen, children, failed, results = by_product[1]
    assert {1, 2} <= set(seen)
    assert [c["id"] for c in children] == child_ids
    assert failed == [] and sorted(x["n"] for x in results) == [1, 2]
    _, _, children, failed, _ = by_product[2]
    assert [c["id"] for c in children] == [ok_id, bad_id]
    assert [f["id"] for f in failed] == [bad_id] and "no pixels" in failed[0]["reason"]
    (letter,) = admin.dead("index")
    assert letter["id"] == dead_parent and "no pixels" in letter["error"], letter


def test_a_schedule_on_two_workers_enqueues_each_tick_once(server, r):
    ticks = []
    lock = threading.Lock()
    workers = [fast_worker(server) for _ in range(2)]
    for w in workers:
        w.schedule("*/1 * * * * *", "tick", {"job": "cleanup"}, name="Cleanup",
                   tick_field="tick")

        @w.task("tick", name="Cleanup")
        def cleanup(payload):
            with lock:
                ticks.append(payload)

    with running(*workers):
        wait_for(lambda: len(ticks) >= 3, 20, "three ticks handled")
    times = [p["tick"] for p in ticks]
    assert all(p["job"] == "cleanup" for p in ticks), ticks
    assert all(t % 1000 == 0 for t in times), times
    # Two workers, one schedule: each tick enqueued once.
    assert len(times) == len(set(times)), sorted(times)


def test_a_schedule_with_a_bad_expression_is_refused_at_start(server):
    worker = fast_worker(server)
    worker.schedule("61 * * * *", "tick", {"job": "x"})
    worker.task("tick")(lambda p: None)
    with pytest.raises(mq.MqError, match="cron expression"):
        worker.run()
    with pytest.raises(TypeError):
        worker.schedule("* * * * *", "tick", [1, 2])  # type: ignore[arg-type]
