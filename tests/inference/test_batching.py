"""The micro-batcher: requests that arrive together share one call, each gets its own results in order,
batches stay within their bounds, batching can be turned off, and one bad request fails alone."""

from __future__ import annotations

import asyncio
import threading

import pytest

from bertkit.inference.batching import MicroBatcher


class Recorder:
    """A stand-in model: doubles numbers, records the jobs of every call, refuses negative numbers."""

    def __init__(self) -> None:
        self.calls: list[list[list[int]]] = []
        self.threads: set[str] = set()

    def __call__(self, groups):
        self.calls.append([list(g) for g in groups])
        self.threads.add(threading.current_thread().name)
        if any(x < 0 for g in groups for x in g):
            raise ValueError("negative")
        return [[2 * x for x in g] for g in groups]


async def submit_all(batcher: MicroBatcher, jobs: list[list[int]]) -> list:
    return await asyncio.gather(*(batcher.predict(job) for job in jobs), return_exceptions=True)


def run_jobs(jobs: list[list[int]], **options) -> tuple[list, Recorder, list[tuple[int, int]]]:
    model, seen = Recorder(), []
    batcher = MicroBatcher(model, on_batch=lambda inputs, n: seen.append((inputs, n)), **options)
    batcher.start()
    try:
        results = asyncio.run(submit_all(batcher, jobs))
    finally:
        batcher.stop()
    return results, model, seen


def test_requests_that_arrive_together_share_a_call_and_get_their_own_results():
    jobs = [[i, i + 100] for i in range(10)]
    results, model, seen = run_jobs(jobs, max_batch=64, max_wait=0.5)
    assert results == [[2 * i, 2 * i + 200] for i in range(10)]
    assert len(model.calls) < len(jobs)  # some requests shared a call
    assert max(n for _, n in seen) > 1
    assert sum(inputs for inputs, _ in seen) == 20
    assert model.threads == {"bertkit-model"}  # never the event loop's thread


def test_a_batch_holds_at_most_max_batch_inputs_and_never_splits_a_request():
    jobs = [[1, 2, 3]] * 6 + [list(range(10))]  # the last is larger than a batch: it runs alone
    results, model, _ = run_jobs(jobs, max_batch=7, max_wait=0.3)
    assert results == [[2, 4, 6]] * 6 + [[2 * x for x in range(10)]]
    for call in model.calls:
        assert sum(len(job) for job in call) <= 7 or len(call) == 1
    assert [list(range(10))] in model.calls


@pytest.mark.parametrize("options", [{"max_batch": 1, "max_wait": 0.3}, {"max_batch": 32, "max_wait": 0.0}])
def test_batching_off_runs_every_request_alone(options):
    jobs = [[i] for i in range(8)]
    results, model, seen = run_jobs(jobs, **options)
    assert results == [[2 * i] for i in range(8)]
    assert len(model.calls) == 8 and all(n == 1 for _, n in seen)


def test_a_failing_request_fails_alone():
    jobs = [[1], [-1], [3]]
    results, _, _ = run_jobs(jobs, max_batch=8, max_wait=0.3)
    assert results[0] == [2] and results[2] == [6]
    assert isinstance(results[1], ValueError)


def test_predict_before_start_is_refused():
    batcher = MicroBatcher(Recorder(), max_batch=4, max_wait=0.0)
    with pytest.raises(RuntimeError, match="not running"):
        asyncio.run(batcher.predict([1]))
