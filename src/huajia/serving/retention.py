"""What the server keeps of its users' work, and for how long (seed 003: do not keep what users
did not ask you to keep).

- ``DELETE /v1/jobs/{id}`` removes the job (its prompt and result), its pictures and their cache
  entries; the pictures' signed URLs then answer 404, also after a restart (nothing is left on
  disk to serve). A picture another job still names stays (the same tenant asked twice).
- ``--retain-days`` and ``--retain-bytes`` delete finished jobs, their pictures and cache entries
  on a schedule, oldest first.
- A full picture store (``--images-max-bytes``) or a tenant past its quota
  (``--tenant-quota-bytes``) refuses new work with a 507 naming the way out, instead of dropping
  finished jobs' results.
"""

from __future__ import annotations

import time

from huajia.errors import HuajiaError
from huajia.serving.cache import ResultCache
from huajia.serving.queue import Job, JobQueue

MB = 1024**2
SWEEP_EVERY_S = 60.0


class StoreFull(HuajiaError):
    """The picture store, or a tenant's share of it, is full (HTTP 507)."""


class StoredResults:
    def __init__(self, queue: JobQueue, images: ResultCache, cache: ResultCache, config,
                 forget=None):
        self.queue, self.images, self.cache, self.config = queue, images, cache, config
        self.forget = forget or (lambda name: None)  # e.g. the re-encoder's copies
        self.last_sweep = 0.0

    def check_room(self, owner: str | None) -> None:
        """Refuse new work when the pictures it would store have no room."""
        cap, quota = self.config.images_max_bytes, self.config.tenant_quota_bytes
        used = self.images.size()
        if used >= cap:
            raise StoreFull(f"the server's picture store is full ({used / MB:.1f} of "
                            f"{cap / MB:.1f} MiB); delete finished jobs (DELETE /v1/jobs/ID) "
                            "or retry after its retention sweep")
        if quota and owner is not None and self.images.size(owner) >= quota:
            raise StoreFull(f"your stored pictures reached your quota ({quota / MB:.1f} MiB); "
                            "delete finished jobs (DELETE /v1/jobs/ID) to make room")

    def delete(self, job: Job) -> None:
        """The job, its pictures and their cache entries gone (a running job is cancelled
        first: what its worker stores after is dropped by ``drop_unclaimed``)."""
        self.queue.cancel(job.id)
        self.queue.delete(job.id)
        self.drop_unclaimed(item["file"] for item in (job.result or {}).get("images", []))

    def drop_unclaimed(self, names) -> None:
        """Delete the pictures no job names any more, and their cache entries."""
        for name in names:
            if self.queue.referenced(name):
                continue
            key = name.rpartition(".")[0]
            self.images.delete(key)
            self.cache.delete(key)
            self.forget(name)

    def sweep(self, now: float | None = None) -> int:
        """Apply --retain-days and --retain-bytes; returns how many jobs were deleted."""
        now = time.time() if now is None else now
        self.last_sweep = now
        deleted = 0
        if self.config.retain_days > 0:
            cutoff = now - self.config.retain_days * 86400
            while jobs := self.queue.finished_before(cutoff, limit=500):
                for job in jobs:
                    self.delete(job)
                deleted += len(jobs)
            for key in self.cache.unused_since(cutoff):  # repeats answered from old entries
                self.cache.delete(key)
            # pictures of requests answered from the cache belong to no job
            self.drop_unclaimed(f"{key}.png" for key in self.images.unused_since(cutoff))
        limit = self.config.retain_bytes
        while limit and self.images.size() > limit:
            jobs = self.queue.finished_before(now + 1, limit=50)
            if not jobs:
                break
            for job in jobs:
                self.delete(job)
                deleted += 1
                if self.images.size() <= limit:
                    break
        return deleted

    def due(self, now: float | None = None) -> bool:
        """Whether a retention sweep is due (only when a retention setting is on)."""
        on = self.config.retain_days > 0 or self.config.retain_bytes > 0
        return on and (time.time() if now is None else now) - self.last_sweep >= SWEEP_EVERY_S
