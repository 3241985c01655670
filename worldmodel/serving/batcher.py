"""The dynamic batching queue: requests that arrive together are decoded together, by one worker thread.

The worker takes the oldest waiting request, waits up to ``batch_timeout`` seconds for more to arrive, and
runs up to ``max_batch`` waiting requests that share its batch key (the same decoding shape) as one batch;
the others keep their place. The queue holds at most ``max_queue`` requests: :meth:`Batcher.submit` raises
:class:`QueueFull` past that. While a request waits, :meth:`Batcher.status` tells its place in the queue or
the progress of its batch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

RunBatch = Callable[[list[Any], Callable[[int, int], None]], list[Any]]


class QueueFull(RuntimeError):
    """The queue already holds its maximum number of requests."""


@dataclass
class Job:
    """A queued request: its payload, batch key, result future and progress."""

    id: str
    payload: Any
    key: Hashable
    future: Future = field(default_factory=Future)
    submitted: float = field(default_factory=time.perf_counter)
    started: float | None = None
    finished: float | None = None
    batch_size: int = 0
    done: int = 0
    total: int = 0


class Batcher:
    """Run ``run_batch(payloads, progress)`` on batches of submitted payloads in a worker thread.

    ``run_batch`` returns one result per payload, in order, and may call ``progress(done, total)``; its
    exceptions fail every request of the batch.
    """

    def __init__(self, run_batch: RunBatch, max_batch: int = 16, max_queue: int = 64,
                 batch_timeout: float = 0.02) -> None:
        if max_batch < 1 or max_queue < 1 or batch_timeout < 0:
            raise ValueError(f"max_batch and max_queue must be >= 1 and batch_timeout >= 0, got {max_batch}, "
                             f"{max_queue}, {batch_timeout}")
        self.run_batch = run_batch
        self.max_batch, self.max_queue, self.batch_timeout = max_batch, max_queue, batch_timeout
        self._waiting: list[Job] = []
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="batcher", daemon=True)
        self._thread.start()

    def submit(self, job_id: str, payload: Any, key: Hashable) -> Job:
        """Queue a payload under a new, unique ``job_id``; raise :class:`QueueFull` when the queue is full."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            if job_id in self._jobs:
                raise ValueError(f"request id {job_id!r} is already in use by a waiting request")
            if len(self._jobs) >= self.max_queue:
                raise QueueFull(f"the queue is full ({self.max_queue} requests): try again shortly")
            job = Job(job_id, payload, key)
            self._waiting.append(job)
            self._jobs[job_id] = job
            self._lock.notify_all()
        return job

    def status(self, job_id: str) -> dict[str, Any] | None:
        """``{"state": "queued", "position": n}`` (1 = next), ``{"state": "running", "progress": 0..1}``, or
        ``None`` for an unknown or finished request."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            if job.started is None:
                return {"state": "queued", "position": self._waiting.index(job) + 1}
            return {"state": "running", "batch_size": job.batch_size,
                    "progress": job.done / job.total if job.total else 0.0}

    @property
    def pending(self) -> int:
        """Requests queued or running."""
        with self._lock:
            return len(self._jobs)

    def close(self) -> None:
        """Stop the worker after the batch it is running; requests still waiting fail."""
        with self._lock:
            self._closed = True
            waiting, self._waiting = self._waiting, []
            for job in waiting:
                self._jobs.pop(job.id, None)
                job.future.set_exception(RuntimeError("the server is shutting down"))
            self._lock.notify_all()
        self._thread.join()

    def _next_batch(self) -> list[Job] | None:
        """Wait for work, then take the oldest request and up to ``max_batch - 1`` more with its key."""
        with self._lock:
            while not self._waiting and not self._closed:
                self._lock.wait()
            if self._closed:
                return None
            deadline = time.perf_counter() + self.batch_timeout
            while len(self._waiting) < self.max_batch and not self._closed:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                self._lock.wait(left)
            if not self._waiting:
                return None
            key = self._waiting[0].key
            batch = [job for job in self._waiting if job.key == key][: self.max_batch]
            self._waiting = [job for job in self._waiting if job not in batch]
            now = time.perf_counter()
            for job in batch:
                job.started, job.batch_size = now, len(batch)
            return batch

    def _work(self) -> None:
        """The worker loop: run batches until closed."""
        while True:
            batch = self._next_batch()
            if batch is None:
                if self._closed:
                    return
                continue

            def progress(done: int, total: int, jobs: list[Job] = batch) -> None:
                for job in jobs:
                    job.done, job.total = done, total

            try:
                results = self.run_batch([job.payload for job in batch], progress)
                if len(results) != len(batch):
                    raise RuntimeError(f"run_batch returned {len(results)} results for {len(batch)} requests")
            except Exception as err:  # a failed batch fails its requests, never the worker
                results = [err] * len(batch)
            now = time.perf_counter()
            with self._lock:
                for job in batch:
                    self._jobs.pop(job.id, None)
                    job.finished = now
            for job, result in zip(batch, results, strict=True):
                if isinstance(result, Exception):
                    job.future.set_exception(result)
                else:
                    job.future.set_result(result)
