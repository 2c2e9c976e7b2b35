"""Which due entry a worker takes: arq's `start_jobs`, given the entries in another order or fewer.

- `FairWorker` (every worker): the job of the user with the fewest running jobs first
  (`queue.fair_order`), so the next free slot never goes to a burst while another user waits.
- `ClassWorker`: a worker that serves some resource classes only takes those of its classes and leaves
  the rest to other workers. The class of each entry is written beside it at enqueue
  (`contract.job_class_key`); an entry with no class written (queued by an older version) counts as
  the instance's default class."""

from __future__ import annotations

from typing import Any

from arq import Worker

from leadersboard.contract import job_class_key
from leadersboard.queue import fair_order

READ_LIMIT = 1000  # due entries looked at per poll: the fair order and others' classes need more than the head


class FairWorker(Worker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, queue_read_limit=READ_LIMIT, **kwargs)

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        await super().start_jobs(await fair_order(self.pool, job_ids))


class ClassWorker(FairWorker):
    def __init__(self, *args: Any, classes: frozenset[str], default: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.classes = classes
        self.default = default

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        if job_ids:
            named = await self.pool.mget([job_class_key(job_id.decode()) for job_id in job_ids])
            job_ids = [job_id for job_id, cls in zip(job_ids, named, strict=True)
                       if ((cls.decode() if cls else "") or self.default) in self.classes]
        await super().start_jobs(job_ids)
