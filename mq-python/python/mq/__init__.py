"""mq: a Redis Streams task queue, with producers and workers on mq's own Rust runtime.

The same worker as Rust's: leases renewed from a Rust thread that a busy handler cannot
starve, reclaim of a dead worker's tasks, retries with backoff, dead letters, batches,
Prometheus metrics and graceful shutdown on SIGINT/SIGTERM. Payloads are dicts, sent as
MessagePack maps, which Rust ``#[derive(Task)]`` structs decode by field name.

    import mq

    producer = mq.Producer("redis://127.0.0.1:6379/")
    producer.enqueue("texts", {"product_id": 7, "text": "red shoe"}, name="EmbedText")

    worker = mq.Worker("redis://127.0.0.1:6379/", concurrency=32)

    @worker.task("texts", max_retries=5, timeout="2m")
    def embed(payload: dict, ctx: mq.Context) -> None:
        ...

    worker.run()
"""

from __future__ import annotations

import asyncio
import inspect
import signal
import threading
from typing import Any, Callable, Optional, TypeVar

from . import _native
from ._native import Admin, Context, Flow, MqError, Producer, Run
from .errors import Duration, Permanent, Retry, Snooze

__all__ = [
    "Admin",
    "Context",
    "Flow",
    "MqError",
    "Permanent",
    "Producer",
    "Retry",
    "Run",
    "Snooze",
    "Worker",
]

F = TypeVar("F", bound=Callable[..., Any])


def _wants_ctx(func: Callable[..., Any]) -> bool:
    """Whether ``func`` takes a second positional parameter (the context)."""
    params = [
        p
        for p in inspect.signature(func).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    has_varargs = any(
        p.kind is p.VAR_POSITIONAL for p in inspect.signature(func).parameters.values()
    )
    return len(params) >= 2 or has_varargs


class Worker:
    """Consumes queues with the functions registered on it, until stopped.

    ``concurrency`` bounds the tasks running at once in this process. ``metrics_addr``
    (``"127.0.0.1:9100"``) serves ``/metrics``, ``/healthz`` and ``/readyz``. Durations are
    seconds, ``timedelta`` or strings such as ``"30s"``.
    """

    def __init__(
        self,
        url: str,
        *,
        concurrency: int = 64,
        prefix: Optional[str] = None,
        group: Optional[str] = None,
        consumer: Optional[str] = None,
        metrics_addr: Optional[str] = None,
        reclaim_timeout: Optional[Duration] = None,
        grace_period: Optional[Duration] = None,
        block_timeout: Optional[Duration] = None,
    ) -> None:
        self._native = _native._Worker(
            url,
            concurrency=concurrency,
            prefix=prefix,
            group=group,
            consumer=consumer,
            metrics_addr=metrics_addr,
            reclaim_timeout=reclaim_timeout,
            grace_period=grace_period,
            block_timeout=block_timeout,
        )
        self._has_async = False

    def task(
        self,
        queue: str,
        *,
        name: Optional[str] = None,
        max_retries: Optional[int] = None,
        timeout: Optional[Duration] = None,
        backoff: Optional[str] = None,
        concurrency: Optional[int] = None,
        result_ttl: Optional[Duration] = None,
    ) -> Callable[[F], F]:
        """Registers a function for the tasks of ``queue`` (only those named ``name`` if
        given), as ``def f(payload)`` or ``def f(payload, ctx)``, sync or ``async``.

        Its return value is the task's result when ``result_ttl`` keeps results. Raising
        ``mq.Permanent`` dead-letters the task, ``mq.Retry(after=...)`` retries it,
        ``mq.Snooze(after)`` runs it later without counting an attempt; any other exception
        retries it with ``backoff`` (``"exponential(1s, 10m)"``, ``"fixed(5s)"``, ``"none"``).
        """

        return self._decorator(
            queue,
            name=name,
            max_retries=max_retries,
            timeout=timeout,
            backoff=backoff,
            concurrency=concurrency,
            result_ttl=result_ttl,
        )

    def batch(
        self,
        queue: str,
        *,
        max_size: int = 32,
        max_wait_ms: float = 20,
        name: Optional[str] = None,
        max_retries: Optional[int] = None,
        timeout: Optional[Duration] = None,
        backoff: Optional[str] = None,
        concurrency: Optional[int] = None,
        result_ttl: Optional[Duration] = None,
    ) -> Callable[[F], F]:
        """Registers a function that takes a list of payloads (and a list of contexts):
        batches of up to ``max_size`` tasks, each waiting at most ``max_wait_ms`` for the
        batch to fill (one model call per batch). It returns ``None`` (all succeeded) or one
        entry per task: an exception instance fails that task (as if it raised it), any other
        value succeeds it. Raising fails every task of the batch. Keep ``concurrency`` (the
        worker's or the queue's) at least ``max_size``: a batch never holds more tasks than
        there are free slots.
        """

        return self._decorator(
            queue,
            name=name,
            max_retries=max_retries,
            timeout=timeout,
            backoff=backoff,
            concurrency=concurrency,
            result_ttl=result_ttl,
            batch_size=max_size,
            batch_wait=max_wait_ms / 1000.0,
        )

    def schedule(
        self,
        expr: str,
        queue: str,
        payload: dict[str, Any],
        *,
        name: Optional[str] = None,
        schedule_name: Optional[str] = None,
        tick_field: Optional[str] = None,
    ) -> None:
        """Enqueues ``payload`` (task ``name``, default the queue's name) on ``queue`` at
        every tick of the cron expression ``expr`` (5 fields, or 6 with seconds first; UTC),
        exactly once per tick however many workers run the same schedule (``schedule_name``,
        default the task name). With ``tick_field`` the payload gets that field set to the
        tick's time in unix ms. A bad expression is refused when the worker starts."""
        self._native.schedule(
            expr, queue, payload, name=name, schedule_name=schedule_name, tick_field=tick_field
        )

    def _decorator(self, queue: str, **options: Any) -> Callable[[F], F]:
        def register(func: F) -> F:
            self._register(queue, func, **options)
            return func

        return register

    def _register(self, queue: str, func: Callable[..., Any], **options: Any) -> None:
        is_async = inspect.iscoroutinefunction(func)
        self._has_async |= is_async
        self._native.register(
            queue, func, wants_ctx=_wants_ctx(func), is_async=is_async, **options
        )

    def run(self) -> None:
        """Runs until ``stop()``, SIGINT or SIGTERM, then shuts down gracefully: no new
        tasks, running ones get the grace period, what was fetched but not started is handed
        back. A second signal aborts the running tasks (handed back to other workers)."""
        loop: Optional[asyncio.AbstractEventLoop] = None
        loop_thread: Optional[threading.Thread] = None
        if self._has_async:
            loop = asyncio.new_event_loop()
            loop_thread = threading.Thread(
                target=loop.run_forever, name="mq-asyncio", daemon=True
            )
            loop_thread.start()
        previous = {}
        if threading.current_thread() is threading.main_thread():

            def on_signal(signum: int, frame: Any) -> None:
                if self._native.stopping():
                    self._native.abort()
                else:
                    self._native.stop()

            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, on_signal)
        try:
            self._native.run(loop)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if loop is not None and loop_thread is not None:
                loop.call_soon_threadsafe(loop.stop)
                loop_thread.join(timeout=5)
                loop.close()

    def stop(self) -> None:
        """Stops the worker gracefully; safe from a handler or another thread."""
        self._native.stop()
