"""Who paints a job: the seam between the service (queue, cache, safety, files) and a model.

``LocalPainter`` holds an Engine in this process; the worker thread is its only user, so one
job batch runs at a time and step progress streams to the client. ``serving.ray.RayPainter``
sends the same calls to Ray Serve model replicas, several in flight at once. Both take and give
the same things: ``JobSpec``s in, ``(picture, infotext)`` pairs out, one list per job.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from PIL import Image

from huajia.engine.engine import Engine
from huajia.engine.facts import ModelFacts
from huajia.serving.config import CriticSettings
from huajia.serving.jobs import JobSpec

Pictures = list[tuple[Image.Image, str]]  # one job's pictures with their infotexts


class PainterLost(Exception):
    """The painter died under a job (a Ray replica killed mid-job): run the job again."""


class Painter(Protocol):
    concurrency: int
    streams_progress: bool

    @property
    def facts(self) -> ModelFacts: ...
    def warm_up(self) -> None: ...
    def generate(self, specs: list[JobSpec],
                 on_step: Callable[[int, int], None] | None = None) -> list[Pictures]: ...
    def edit(self, spec: JobSpec) -> Pictures: ...
    def think(self, spec: JobSpec, on_thought: Callable[[int, object], None] | None = None
              ) -> Pictures: ...


class LocalPainter:
    concurrency = 1  # jobs in flight at once
    streams_progress = True

    def __init__(self, engine: Engine, critics: CriticSettings):
        self.engine, self.critics = engine, critics

    @property
    def facts(self) -> ModelFacts:
        return self.engine.facts

    def warm_up(self) -> None:
        self.engine.warm_up()

    def generate(self, specs: list[JobSpec],
                 on_step: Callable[[int, int], None] | None = None) -> list[Pictures]:
        results = self.engine.generate_batch([s.request for s in specs], on_step=on_step)
        return [list(zip(r.images, r.infotexts, strict=True)) for r in results]

    def edit(self, spec: JobSpec) -> Pictures:
        image, mask = spec.edit.pictures()
        if spec.edit.mode == "edit":
            result = self.engine.edit(spec.request, image, mask, strength=spec.edit.strength)
        else:
            result = self.engine.vary(spec.request, image, strength=spec.edit.strength)
        return list(zip(result.images, result.infotexts, strict=True))

    def think(self, spec: JobSpec, on_thought: Callable[[int, object], None] | None = None
              ) -> Pictures:
        from huajia.thinking.loop import Thinker

        thinker = Thinker(self.engine, self.critics.make(spec.critic), spec.think)
        results = thinker.think_all(spec.request, on_thought=on_thought)
        return [(result.image, result.infotext) for result in results]

    def run(self, spec: JobSpec) -> Pictures:
        """One job of any kind, without progress (what a remote replica is asked)."""
        if spec.edit:
            return self.edit(spec)
        if spec.think:
            return self.think(spec)
        return self.generate([spec])[0]
