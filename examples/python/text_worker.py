#!/usr/bin/env python3
"""The pipeline's text worker in Python, on the ``mq`` package (mq's own Rust runtime).

It consumes the ``texts`` queue (``EmbedText`` tasks from the Rust ``producer`` or any other),
embeds each batch with one model call and stores each vector where the Rust text worker does:
``SET mq-demo:vec:text:<product_id>`` = little-endian f32 bytes. The default model is the same
hashing stand-in as Rust's (``mq_examples::pipeline::standin::embed_text``), bit for bit, so
either worker may handle any task; ``--model minilm`` uses sentence-transformers'
all-MiniLM-L6-v2 when that package is installed. A blank text is dead-lettered
(``mq.Permanent``), as the Rust worker does.

Run (from the workspace root, with a Redis and ``pip install ./mq-python redis``):

    python3 examples/python/text_worker.py --url redis://127.0.0.1:6379/ --concurrency 64
    cargo run -p mq-examples --bin producer -- --url redis://127.0.0.1:6379/

Stops gracefully on SIGINT/SIGTERM (a second signal aborts the running batch, handed back).
"""

from __future__ import annotations

import argparse
import math
import os
import struct
from typing import Callable, List

import redis

import mq

TEXT_DIM = 256
VECTOR_KEY_PREFIX = "mq-demo:vec"


def fnv1a64(data: bytes) -> int:
    """64-bit FNV-1a, as ``standin::fnv1a64``."""
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def embed_text(text: str) -> List[float]:
    """Signed hashing of character 3-grams into 256 buckets, L2-normalized: the same vector
    as the Rust stand-in (``standin::embed_text``)."""
    chars = " " + " ".join(text.lower().split()) + " "
    if len(chars) <= 2:
        return [0.0] * TEXT_DIM
    counts = [0] * TEXT_DIM
    for i in range(len(chars) - 2):
        h = fnv1a64(chars[i : i + 3].encode("utf-8"))
        counts[h % TEXT_DIM] += 1 if h >> 63 == 0 else -1
    norm = math.sqrt(sum(float(c) * float(c) for c in counts))
    if norm == 0.0:
        return [0.0] * TEXT_DIM
    return [c / norm for c in counts]


def model(name: str) -> Callable[[List[str]], List[List[float]]]:
    if name == "hashed":
        return lambda texts: [embed_text(t) for t in texts]
    if name == "minilm":
        from sentence_transformers import SentenceTransformer  # optional dependency

        st = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")
        return lambda texts: [list(v) for v in st.encode(texts, normalize_embeddings=True)]
    raise SystemExit(f"unknown model {name!r}: use hashed or minilm")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default=os.environ.get("MQ_REDIS_URL", "redis://127.0.0.1:6379/"))
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32, help="tasks per model call (at most)")
    ap.add_argument("--batch-wait-ms", type=float, default=20)
    ap.add_argument("--model", default="hashed", help="hashed (default) or minilm")
    ap.add_argument("--metrics-addr", default=None, help="serve /metrics here, e.g. 127.0.0.1:9101")
    ap.add_argument("--reclaim-timeout-ms", type=int, default=30_000)
    args = ap.parse_args()

    embed = model(args.model)
    store = redis.Redis.from_url(args.url)
    worker = mq.Worker(
        args.url,
        concurrency=args.concurrency,
        metrics_addr=args.metrics_addr,
        reclaim_timeout=args.reclaim_timeout_ms / 1000,
    )

    @worker.batch("texts", name="EmbedText", max_size=args.batch, max_wait_ms=args.batch_wait_ms,
                  max_retries=3, timeout="1m", backoff="exponential(500ms, 30s)")
    def embed_texts(payloads: list) -> list:
        valid = [p for p in payloads if p["text"].strip()]
        vectors = iter(embed([p["text"] for p in valid]))
        pipe = store.pipeline(transaction=False)
        outcomes: list = []
        for p in payloads:
            if not p["text"].strip():
                outcomes.append(mq.Permanent("text empty"))
                continue
            v = next(vectors)
            key = f"{VECTOR_KEY_PREFIX}:text:{p['product_id']}"
            pipe.set(key, struct.pack(f"<{len(v)}f", *v))
            outcomes.append(None)
        pipe.execute()
        return outcomes

    worker.run()


if __name__ == "__main__":
    main()
