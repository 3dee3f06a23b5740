"""Type stubs of mq's native module (the Rust half of the package)."""

from typing import Any, Callable, Literal, Optional, Sequence, final

from .errors import Duration

__all__ = ["MqError", "Producer", "Run", "Flow", "Admin", "_Worker", "Context", "Done"]

class MqError(Exception):
    """An error of mq itself: Redis unreachable, a bad option, a refused configuration."""

@final
class Producer:
    """Enqueues tasks into mq's queues; safe to share between threads."""

    def __new__(cls, url: str, *, prefix: Optional[str] = None) -> Producer: ...
    def enqueue(
        self,
        queue: str,
        payload: dict[str, Any],
        *,
        name: Optional[str] = None,
        delay: Optional[Duration] = None,
        priority: Optional[str] = None,
        unique: Optional[str] = None,
        result_ttl: Optional[Duration] = None,
        run: Optional[Run] = None,
    ) -> str:
        """Enqueues one task and returns its id (``name`` defaults to the queue's name).

        ``unique``: added only if no live task of the queue holds that key (else the live
        task's id is returned). ``result_ttl``: status and result kept that long after the
        task ends. ``run``: counted in that run (not with ``delay``, ``priority``, ``unique``).
        """
    def submit(
        self,
        queue: str,
        payload: dict[str, Any],
        *,
        name: Optional[str] = None,
        delay: Optional[Duration] = None,
        priority: Optional[str] = None,
        unique: Optional[str] = None,
        result_ttl: Optional[Duration] = None,
    ) -> tuple[str, bool]:
        """As ``enqueue``; returns ``(id, added)``, ``added`` False for a refused duplicate."""
    def enqueue_many(
        self,
        queue: str,
        payloads: Sequence[dict[str, Any]],
        *,
        name: Optional[str] = None,
        delay: Optional[Duration] = None,
        priority: Optional[str] = None,
        result_ttl: Optional[Duration] = None,
        run: Optional[Run] = None,
    ) -> list[str]:
        """Enqueues many tasks, sent concurrently; returns their ids in order."""
    def flow(
        self,
        queue: str,
        payload: dict[str, Any],
        *,
        name: Optional[str] = None,
        result_ttl: Optional[Duration] = None,
        policy: Literal["all_succeeded", "always"] = "all_succeeded",
    ) -> Flow:
        """Starts a flow whose parent is this task; add children, then ``enqueue()``."""
    def run(self, name: str) -> Run:
        """Opens the run ``name`` (made on first use)."""

@final
class Run:
    """A named group of tasks counted together, with one completion task at its end."""

    @property
    def name(self) -> str: ...
    def seal(
        self,
        queue: Optional[str] = None,
        payload: Optional[dict[str, Any]] = None,
        *,
        name: Optional[str] = None,
    ) -> bool:
        """No more tasks: the completion task (if given) is enqueued once all have ended.
        Returns whether this call sealed the run."""

@final
class Flow:
    """A parent task that runs once all its children have ended."""

    def child(
        self,
        queue: str,
        payload: dict[str, Any],
        *,
        name: Optional[str] = None,
        result_ttl: Optional[Duration] = None,
    ) -> Flow: ...
    def child_flow(self, flow: Flow) -> Flow: ...
    def enqueue(self) -> tuple[str, list[str]]:
        """Writes the flow in one MULTI; returns (parent_id, child_ids)."""

@final
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
    @property
    def children(self) -> list[dict[str, str]]:
        """A flow parent's children (``queue``, ``id``); empty for other tasks."""
    @property
    def failed_children(self) -> list[dict[str, str]]:
        """A flow parent's children that died or were cancelled (``queue``, ``id``, ``reason``)."""
    def is_cancelled(self) -> bool: ...
    def progress(self, value: Any) -> None:
        """Reports the task's progress (any value that converts to JSON), readable with
        `Admin.progress`. Throttled to one write a second, the last value wins; a report
        after the handler returned is dropped. Raises TypeError for a value JSON cannot hold."""

@final
class _Worker:
    def __new__(
        cls,
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
    ) -> _Worker: ...
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
    def schedule(
        self,
        expr: str,
        queue: str,
        payload: dict[str, Any],
        *,
        name: Optional[str] = None,
        schedule_name: Optional[str] = None,
        tick_field: Optional[str] = None,
    ) -> None: ...
    def run(self, event_loop: Optional[Any] = None) -> None: ...
    def stop(self) -> None: ...
    def abort(self) -> None: ...
    def stopping(self) -> bool: ...

@final
class Admin:
    """Reads queues and acts on dead letters."""

    def __new__(cls, url: str, *, prefix: str = "mq", group: str = "mq") -> Admin: ...
    def queues(self) -> list[str]: ...
    def stats(self, queue: str) -> dict[str, Any]:
        """``queue``, ``length``, ``pending``, ``backlog``, ``delayed``, ``dead``,
        ``consumers``, ``paused``."""
    def dead(self, queue: str, count: int = 100) -> list[dict[str, Any]]:
        """The newest dead letters: ``dead_id``, ``id``, ``name``, ``error``, ``attempts``,
        ``failed_at``, ``worker``, ``payload``."""
    def run(self, name: str) -> Optional[dict[str, Any]]:
        """A run's ``total``, ``done``, ``dead``, ``failed``, ``remaining``, ``sealed``,
        ``ended``, ``rate_per_sec``, ``eta_secs`` (``None`` if there is no such run)."""
    def replay(self, queue: str, dead_ids: Sequence[str]) -> int: ...
    def replay_all(self, queue: str) -> int: ...
    def status(self, queue: str, id: str) -> dict[str, Any]:
        """``state`` and that state's fields (``due``, ``consumer``, ``error``, ...)."""
    def progress(self, queue: str, id: str) -> Any:
        """The last progress the task reported, or None."""
    def result(self, queue: str, id: str) -> Any: ...

@final
class Done:
    """The done-callback of an async handler's future (internal)."""

    def __call__(self, future: Any) -> None: ...
