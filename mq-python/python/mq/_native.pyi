"""Type stubs of mq's native module (the Rust half of the package)."""

from typing import Any, Callable, Optional, Sequence

from .errors import Duration

class MqError(Exception):
    """An error of mq itself: Redis unreachable, a bad option, a refused configuration."""

class Producer:
    """Enqueues tasks into mq's queues; safe to share between threads."""

    def __init__(self, url: str, *, prefix: Optional[str] = None) -> None: ...
    def enqueue(
        self,
        queue: str,
        payload: dict[str, Any],
        *,
        name: Optional[str] = None,
        delay: Optional[Duration] = None,
        priority: Optional[str] = None,
    ) -> str:
        """Enqueues one task and returns its id (``name`` defaults to the queue's name)."""
    def enqueue_many(
        self,
        queue: str,
        payloads: Sequence[dict[str, Any]],
        *,
        name: Optional[str] = None,
        delay: Optional[Duration] = None,
        priority: Optional[str] = None,
    ) -> list[str]:
        """Enqueues many tasks, sent concurrently; returns their ids in order."""

class Context:
    """What a handler knows about its task."""

    id: str
    entry_id: str
    queue: str
    name: str
    attempt: int
    max_retries: int
    enqueued_at: int
    last_error: Optional[str]
    def is_cancelled(self) -> bool: ...

class _Worker:
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
    ) -> None: ...
    def register(
        self,
        queue: str,
        func: Callable[..., Any],
        *,
        name: Optional[str] = None,
        wants_ctx: bool = False,
        is_async: bool = False,
        max_retries: Optional[int] = None,
        timeout: Optional[Duration] = None,
        backoff: Optional[str] = None,
        concurrency: Optional[int] = None,
        result_ttl: Optional[Duration] = None,
        batch_size: Optional[int] = None,
        batch_wait: Optional[Duration] = None,
    ) -> None: ...
    def run(self, event_loop: Optional[Any] = None) -> None: ...
    def stop(self) -> None: ...
    def abort(self) -> None: ...
    def stopping(self) -> bool: ...

class Admin:
    """Reads queues and acts on dead letters."""

    def __init__(self, url: str, *, prefix: str = "mq", group: str = "mq") -> None: ...
    def queues(self) -> list[str]: ...
    def stats(self, queue: str) -> dict[str, Any]:
        """``queue``, ``length``, ``pending``, ``backlog``, ``delayed``, ``dead``,
        ``consumers``, ``paused``."""
    def dead(self, queue: str, count: int = 100) -> list[dict[str, Any]]:
        """The newest dead letters: ``dead_id``, ``id``, ``name``, ``error``, ``attempts``,
        ``failed_at``, ``worker``, ``payload``."""
    def replay(self, queue: str, dead_ids: Sequence[str]) -> int: ...
    def replay_all(self, queue: str) -> int: ...
    def status(self, queue: str, id: str) -> dict[str, Any]:
        """``state`` and that state's fields (``due``, ``consumer``, ``error``, ...)."""
    def result(self, queue: str, id: str) -> Any: ...
