"""The batching queue: requests arriving together run together, grouped by key, bounded, failures contained."""

import threading

import pytest

from worldmodel.serving.batcher import Batcher, QueueFull


class Recorder:
    """A run_batch that records its batches and can be held until released."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = threading.Event()
        self.release.set()

    def __call__(self, payloads, progress):
        self.release.wait(10)
        self.batches.append(list(payloads))
        progress(1, 2)
        if "boom" in payloads:
            raise RuntimeError("boom")
        return [p * 10 for p in payloads]


def test_requests_arriving_together_share_a_batch():
    run = Recorder()
    batcher = Batcher(run, max_batch=3, batch_timeout=0.3)
    jobs = [batcher.submit(f"job-{i}", i, key=i % 2) for i in range(5)]
    assert [j.future.result(10) for j in jobs] == [0, 10, 20, 30, 40]
    batcher.close()
    assert run.batches == [[0, 2, 4], [1, 3]]  # the oldest request's key first, at most max_batch, order kept


def test_queue_limit_positions_and_progress():
    run = Recorder()
    run.release.clear()  # the first batch blocks
    batcher = Batcher(run, max_batch=1, max_queue=3, batch_timeout=0)
    first = batcher.submit("job-a", 1, key=0)
    while batcher.status("job-a")["state"] != "running":
        pass
    second, third = batcher.submit("job-b", 2, key=0), batcher.submit("job-c", 3, key=0)
    assert batcher.status("job-b") == {"state": "queued", "position": 1}
    assert batcher.status("job-c") == {"state": "queued", "position": 2}
    with pytest.raises(QueueFull):
        batcher.submit("job-d", 4, key=0)
    with pytest.raises(ValueError, match="already in use"):
        batcher.submit("job-b", 5, key=0)
    run.release.set()
    assert [j.future.result(10) for j in (first, second, third)] == [10, 20, 30]
    assert batcher.status("job-a") is None and batcher.pending == 0
    batcher.close()


def test_a_failing_batch_fails_its_requests_only():
    batcher = Batcher(Recorder(), max_batch=2, batch_timeout=0.2)
    bad, good = batcher.submit("job-1", "boom", key="x"), batcher.submit("job-2", 7, key="y")
    with pytest.raises(RuntimeError, match="boom"):
        bad.future.result(10)
    assert good.future.result(10) == 70
    batcher.close()


def test_close_fails_waiting_requests():
    run = Recorder()
    run.release.clear()
    batcher = Batcher(run, max_batch=1, batch_timeout=0)
    batcher.submit("job-1", 1, key=0)
    waiting = batcher.submit("job-2", 2, key=0)
    closer = threading.Thread(target=batcher.close)
    closer.start()
    with pytest.raises(RuntimeError, match="shutting down"):
        waiting.future.result(10)
    run.release.set()
    closer.join(10)
    assert not closer.is_alive()
