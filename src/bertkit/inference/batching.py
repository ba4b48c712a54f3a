"""Dynamic micro-batching: requests that arrive together run through the model as one batch.

One worker thread owns the model. Requests queue ``Job``s; the worker takes the first, waits at most
``max_wait`` seconds for more (up to ``max_batch`` inputs in all), runs them in one call and hands each
job its own share of the predictions. The event loop only awaits futures, so it never blocks on the
model. A job is never split: its inputs are predicted together, as one ``Predictor.predict`` call would.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# predictions of several jobs at once: one list of predictions per job, in the jobs' order
RunBatch = Callable[[list[Sequence[Any]]], list[list[Any]]]


@dataclass
class Job:
    records: Sequence[Any]
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)


class MicroBatcher:
    """Runs ``run_batch`` on one worker thread over jobs gathered for at most ``max_wait`` seconds.

    ``max_batch`` bounds the inputs of a batch (a single larger job still runs, alone);
    ``max_batch=1`` or ``max_wait=0`` turns batching off: every job runs by itself. ``on_batch`` is
    called with (inputs, jobs) after each batch, for metrics. ``init_worker`` runs first on the worker
    thread (the torch thread count is a per-thread setting of OpenMP).
    """

    def __init__(
        self,
        run_batch: RunBatch,
        max_batch: int,
        max_wait: float,
        on_batch: Callable[[int, int], None] = lambda inputs, jobs: None,
        init_worker: Callable[[], None] = lambda: None,
    ):
        self.run_batch, self.max_batch, self.max_wait = run_batch, max_batch, max_wait
        self.on_batch, self.init_worker = on_batch, init_worker
        self.jobs: queue.Queue[Job | None] = queue.Queue()
        self.thread: threading.Thread | None = None

    @property
    def batching(self) -> bool:
        return self.max_batch > 1 and self.max_wait > 0

    def start(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self.work, name="bertkit-model", daemon=True)
            self.thread.start()

    def stop(self) -> None:
        if self.thread is not None:
            self.jobs.put(None)
            self.thread.join()
            self.thread = None

    async def predict(self, records: Sequence[Any]) -> list[Any]:
        """The predictions of ``records``, in order, once the worker has run the batch holding them."""
        if self.thread is None:
            raise RuntimeError("the model worker is not running (start() it first)")
        job = Job(records)
        self.jobs.put(job)
        return await asyncio.wrap_future(job.future)

    def work(self) -> None:
        self.init_worker()
        while (first := self.jobs.get()) is not None:
            batch, stop = self.gather(first)
            self.run(batch)
            if stop:
                break

    def gather(self, first: Job) -> tuple[list[Job], bool]:
        """``first`` and the jobs that arrive within ``max_wait`` while the batch has room."""
        batch, size = [first], len(first.records)
        if not self.batching:
            return batch, False
        deadline = time.monotonic() + self.max_wait
        while size < self.max_batch:
            try:
                job = self.jobs.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job is None:
                return batch, True
            if size + len(job.records) > self.max_batch:
                self.run(batch)  # the newcomer does not fit: it opens the next batch
                batch, size, deadline = [job], len(job.records), time.monotonic() + self.max_wait
                continue
            batch.append(job)
            size += len(job.records)
        return batch, False

    def run(self, batch: list[Job]) -> None:
        batch = [job for job in batch if not job.future.cancelled()]  # the client went away
        if not batch:
            return
        try:
            results = self.run_batch([job.records for job in batch])
        except Exception as err:
            if len(batch) == 1:
                settle(batch[0].future, error=err)
                return
            # one bad job must not fail the others: run each alone, so only it gets the error
            for job in batch:
                self.run([job])
            return
        self.on_batch(sum(len(job.records) for job in batch), len(batch))
        for job, result in zip(batch, results):
            settle(job.future, result)


def settle(future: concurrent.futures.Future, result: Any = None, error: BaseException | None = None) -> None:
    """Hand a job its outcome, unless its request was cancelled meanwhile."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except concurrent.futures.InvalidStateError:
        pass
