"""Running a worker in a thread for a test, bounded in time."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator, List

import mq


@contextmanager
def running(*workers: mq.Worker, stop_within: float = 30) -> Iterator[None]:
    """Runs each worker in its own thread; stops them all (gracefully) on exit and fails if
    one does not end within ``stop_within`` s or ended with an error."""
    errors: List[BaseException] = []

    def run(w: mq.Worker) -> None:
        try:
            w.run()
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(w,), daemon=True) for w in workers]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        for w in workers:
            w.stop()
        for t in threads:
            t.join(stop_within)
            assert not t.is_alive(), "worker did not stop in time"
    assert not errors, errors


def dead_letters(r, queue: str) -> list:
    """The dead-letter entries of ``queue`` as dicts of str -> str (binary fields skipped)."""
    out = []
    for _id, fields in r.xrange(f"mq:{{{queue}}}:dead"):
        entry = {}
        for k, v in fields.items():
            try:
                entry[k.decode()] = v.decode()
            except UnicodeDecodeError:
                pass
        out.append(entry)
    return out


def xlen(r, queue: str) -> int:
    return r.xlen(f"mq:{{{queue}}}:stream")
