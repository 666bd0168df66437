"""Per-job event logs (progress, thoughts, state changes) for the server-sent-events stream.

The worker thread publishes; any number of readers follow a job from any index. Logs live in
memory (a stream after a restart starts from the job's stored state); finished jobs' logs are
dropped once there are more than ``keep`` of them.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict


class JobEvents:
    def __init__(self, keep: int = 1000):
        self._logs: OrderedDict[str, list[dict]] = OrderedDict()
        self._lock = threading.Lock()
        self.keep = keep

    def publish(self, job_id: str, event: dict) -> None:
        with self._lock:
            log = self._logs.setdefault(job_id, [])
            log.append({**event, "time": time.time()})
            self._logs.move_to_end(job_id)
            while len(self._logs) > self.keep:
                self._logs.popitem(last=False)

    def since(self, job_id: str, index: int) -> list[dict]:
        with self._lock:
            return list(self._logs.get(job_id, [])[index:])

    def forget(self, job_id: str) -> None:
        """Drop a job's log (a deleted job's thoughts name its prompt)."""
        with self._lock:
            self._logs.pop(job_id, None)
