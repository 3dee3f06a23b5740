"""A worker process for the process tests: handles queue ``chaos`` by counting each task's
``n`` in the hash ``handled`` (and ``started`` before its ``sleep`` seconds)."""

import sys
import time

import redis

import mq

url, consumer, concurrency, reclaim = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
store = redis.Redis.from_url(url)
worker = mq.Worker(url, consumer=consumer, concurrency=concurrency, reclaim_timeout=reclaim,
                   block_timeout="200ms", grace_period="10s")


@worker.task("chaos", max_retries=100, backoff="fixed(10ms)")
def handle(payload, ctx):
    if payload.get("sleep"):
        store.hincrby("started", payload["n"], 1)
        time.sleep(payload["sleep"])
    store.hincrby("handled", payload["n"], 1)


print("ready", flush=True)
worker.run()
print("stopped", flush=True)
