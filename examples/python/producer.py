#!/usr/bin/env python3
"""Enqueue EmbedText tasks for mq's text worker from Python, per docs/wire-format.md.

Shows that any language can produce mq tasks: each task is one XADD to the stream
``mq:{texts}:stream`` with one field, ``t`` (wire format v2): the MessagePack array
``[2, id, name, enqueued_at, payload, traceparent]``, where payload is a bin holding the
MessagePack map {"product_id": int, "text": str} that the Rust task type
``mq_examples::pipeline::EmbedText`` (rmp-serde, named fields) decodes. With ``--delay-ms`` the
tasks go to the delayed set ``mq:{texts}:delayed`` instead, as MessagePack maps {"t": <the same
bytes as a str>} scored by their due time, and a worker's promoter moves them to the stream
when due. (Workers also read the 5-field v1 form, see docs/wire-format.md.)

Run (from the workspace root, with a Redis and ``cargo run -p mq-examples --bin text-worker``):

    pip install -r examples/python/requirements.txt
    python3 examples/python/producer.py --url redis://127.0.0.1:6379/ --count 100
    python3 examples/python/producer.py --input examples/data/products.jsonl   # same texts
    python3 examples/python/producer.py --count 10 --delay-ms 5000             # due in 5 s

Without ``--input`` it generates texts for product ids ``--start-id`` .. ``--start-id + --count
- 1``. With ``--input`` it reads product records (JSON lines), skips those with
``product_id < --start-id`` and those without text, and builds the text exactly like the Rust
producer (trimmed non-blank title and description joined by a newline), so the text worker
stores the same vector for a product whichever producer enqueued it.
"""

import argparse
import json
import os
import secrets
import sys
import time

import msgpack
import redis

#: Crockford's base32 alphabet, used by ULIDs.
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

TASK_NAME = "EmbedText"
QUEUE = "texts"


def new_ulid(now_ms=None):
    """A ULID: 48-bit unix ms timestamp + 80 random bits as 26 Crockford base32 characters."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms << 80) | int.from_bytes(secrets.token_bytes(10), "big")
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def product_text(record):
    """The text to embed, or None: like ``pipeline::product_text`` in Rust."""
    parts = [
        s.strip()
        for s in (record.get("title"), record.get("description"))
        if isinstance(s, str) and s.strip()
    ]
    return "\n".join(parts) if parts else None


def texts_from_file(path, start_id, count):
    """(product_id, text) of the records with text, product_id >= start_id, at most count."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if count is not None and len(out) >= count:
                break
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            pid = record.get("product_id") if isinstance(record, dict) else None
            if not isinstance(pid, int) or isinstance(pid, bool) or pid < start_id:
                continue
            text = product_text(record)
            if text is not None:
                out.append((pid, text))
    return out


def generated_texts(start_id, count):
    """(product_id, text) for count generated products from start_id on."""
    colours = ["red", "blue", "green", "black", "white"]
    things = ["mug", "scarf", "lamp", "backpack", "notebook", "sneaker"]
    return [
        (pid, f"Generated {colours[pid % 5]} {things[pid % 6]} #{pid}\nEnqueued from Python.")
        for pid in range(start_id, start_id + count)
    ]


def payload(product_id, text):
    """The task payload: what rmp-serde's to_vec_named writes for EmbedText."""
    return msgpack.packb({"product_id": product_id, "text": text}, use_bin_type=True)


#: The wire format version, the first element of ``t``.
VERSION = 2


def task_blob(task_id, name, enqueued_at_ms, task_payload, traceparent=None):
    """The value of the ``t`` field: a MessagePack array of exactly 6 elements.

    [2, id (str), name (str), enqueued_at (uint, unix ms), payload (bin), traceparent (str or
    nil)]. use_bin_type=True writes the payload bytes as bin and the strings as str.
    """
    return msgpack.packb(
        [VERSION, task_id, name, enqueued_at_ms, task_payload, traceparent], use_bin_type=True
    )


def fields(product_id, text, now_ms):
    """The stream-entry fields of a first attempt: ``t`` alone (a retry adds ``r``)."""
    return {"t": task_blob(new_ulid(now_ms), TASK_NAME, now_ms, payload(product_id, text))}


def delayed_member(entry):
    """A delayed-set member: a MessagePack map of the fields, every value a str (raw bytes).

    use_bin_type=False writes bytes as the old raw/str type: Redis's Lua cmsgpack, which the
    promoter uses, cannot read the bin types. The promoter XADDs the str's bytes unchanged, so
    the ``t`` blob (with its bin payload inside) arrives in the stream byte for byte.
    """
    return msgpack.packb(entry, use_bin_type=False)


def server_ms(r):
    """The Redis server's clock in unix ms (the promoter compares due times with it)."""
    sec, usec = r.time()
    return sec * 1000 + usec // 1000


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url",
        default=os.environ.get("MQ_REDIS_URL") or "redis://127.0.0.1:6379/",
        help="Redis URL (default: $MQ_REDIS_URL or redis://127.0.0.1:6379/)",
    )
    parser.add_argument("--input", help="JSON-lines product file to take the texts from")
    parser.add_argument(
        "--count",
        type=int,
        help="number of tasks (default: every usable record with --input, else 100)",
    )
    parser.add_argument(
        "--start-id",
        type=int,
        default=None,
        help="first product id (generated) / smallest product id taken (--input); "
        "default 9000000 generated, 0 with --input",
    )
    parser.add_argument(
        "--delay-ms",
        type=int,
        default=0,
        help="schedule the tasks this many ms in the future (delayed set) instead of XADD",
    )
    parser.add_argument("--prefix", default="mq", help="key prefix of the workers (default mq)")
    parser.add_argument("--batch", type=int, default=1000, help="commands per pipeline")
    args = parser.parse_args(argv)
    if args.count is not None and args.count < 0:
        parser.error("--count must not be negative")
    if args.delay_ms < 0:
        parser.error("--delay-ms must not be negative")
    if args.batch < 1:
        parser.error("--batch must be at least 1")

    if args.input:
        start = 0 if args.start_id is None else args.start_id
        items = texts_from_file(args.input, start, args.count)
    else:
        start = 9_000_000 if args.start_id is None else args.start_id
        items = generated_texts(start, 100 if args.count is None else args.count)

    r = redis.Redis.from_url(args.url)
    stream = f"{args.prefix}:{{{QUEUE}}}:stream"
    delayed = f"{args.prefix}:{{{QUEUE}}}:delayed"
    now = int(time.time() * 1000)
    due = server_ms(r) + args.delay_ms if args.delay_ms > 0 else None
    started = time.perf_counter()
    for i in range(0, len(items), args.batch):
        pipe = r.pipeline(transaction=False)
        for product_id, text in items[i : i + args.batch]:
            entry = fields(product_id, text, now)
            if due is None:
                pipe.xadd(stream, entry)
            else:
                pipe.zadd(delayed, {delayed_member(entry): due})
        pipe.execute()
    elapsed = time.perf_counter() - started

    ids = [pid for pid, _ in items]
    span = f"product ids {min(ids)}..{max(ids)}" if ids else "no products"
    where = stream if due is None else f"{delayed} (due in {args.delay_ms} ms)"
    print(f"producer.py: enqueued {len(items)} {TASK_NAME} tasks ({span}) to {where} "
          f"in {elapsed:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
