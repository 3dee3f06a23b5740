"""The Celery side of drain.py: one no-op task on a Redis broker."""

import os

from celery import Celery

app = Celery("bench", broker=os.environ.get("MQ_BENCH_BROKER", "redis://127.0.0.1:6379/0"))
app.conf.task_ignore_result = True
app.conf.worker_hijack_root_logger = False


@app.task(name="noop")
def noop(n):
    return None
