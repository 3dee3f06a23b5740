"""Exceptions a handler raises to tell mq what to do with its task.

Any other exception retries the task with its backoff (and dead-letters it once its retries
are used up), with ``"TypeName: message"`` as the reason.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Optional, Union

Duration = Union[int, float, str, timedelta]


class Permanent(Exception):
    """Dead-letter the task now, with this message as the reason; no retry."""


class Retry(Exception):
    """Retry the task (counting an attempt), after ``after`` instead of its backoff if given."""

    def __init__(self, reason: str = "retry asked for", after: Optional[Duration] = None):
        super().__init__(reason)
        self.after = after


class Snooze(Exception):
    """Run the task again after ``after`` without counting an attempt (not ready yet)."""

    def __init__(self, after: Duration):
        super().__init__(f"snoozed for {after}")
        self.after = after
