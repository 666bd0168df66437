"""The image service behind the HTTP API: durable jobs, one engine worker, micro-batching, cache.

A request becomes a job on disk (SQLite, WAL) before it is acknowledged. One worker thread claims
jobs for the painter (``serving.painter``: the engine in this process, whose pipeline is not
thread-safe, or Ray replicas, several jobs in flight): it takes the oldest queued job with every
queued job that can share its pipeline call (same steps, guidance, size, scheduler, LoRAs), up to
``max_batch``, after waiting at most ``batch_wait_s`` for company. Results are content-addressed:
each image's key hashes the model, every parameter and its seed, so a repeat is served from the
cache without touching the model. Progress and thoughts go to ``JobEvents`` for the SSE stream.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from PIL import Image, ImageFilter

from huajia.engine.edits import edit_size, read_mask
from huajia.engine.engine import Engine
from huajia.engine.facts import ModelFacts
from huajia.engine.infotext import png_bytes
from huajia.engine.prompt_weights import parse_weights
from huajia.engine.request import HIRES_UPSCALERS, GenerationRequest, painted_prompt, parse_size
from huajia.errors import HuajiaError
from huajia.serving.budget import (
    MAX_PAINTED_CHARS,
    SizePrice,
    check_budget,
    check_partial_steps,
    job_cost,
)
from huajia.serving.cache import ResultCache
from huajia.serving.config import CriticSettings, ServeConfig
from huajia.serving.edits import EditInput, as_png, describe_picture, open_picture
from huajia.serving.events import JobEvents
from huajia.serving.jobs import JobSpec, LoraFolder, redact, short
from huajia.serving.painted import (
    LLM_EXTRA_CHUNKS,
    GuardedExpander,
    Painted,
    chunks_of,
    painted_variants,
)
from huajia.serving.painter import LocalPainter, Painter, PainterLost
from huajia.serving.provenance import embed_watermark, key_digest, server_key
from huajia.serving.queue import Job, JobQueue
from huajia.serving.retention import StoredResults
from huajia.serving.schemas import QUALITY_STEPS, ImageGenerationBody
from huajia.thinking.critics import check_plan
from huajia.thinking.plan import plan_prompt
from huajia.world.parser import unknown_words
from huajia.world.reading import reword

FINAL_STATES = ("done", "failed", "cancelled")
LOG = logging.getLogger("huajia.serve")
MAX_ATTEMPTS = 4  # a job whose painter died under it this often fails instead of looping
RETRY_WAIT_S = 1.0


class Cancelled(Exception):
    """Every job of a running batch was cancelled: stop denoising."""


class ImageService:
    def __init__(self, config: ServeConfig,
                 painter_factory: Callable[[ImageService], Painter] | None = None):
        self.config = config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.queue = JobQueue(config.data_dir / "jobs.sqlite")
        self.cache = ResultCache(config.data_dir / "cache", config.cache_max_bytes)
        # result files behind GET /v1/images/files/{name}: capped like the cache, oldest first
        self.images = ResultCache(config.data_dir / "images", config.images_max_bytes,
                                  evict=False)  # full: new work is refused (retention.py)
        self.results = StoredResults(self.queue, self.images, self.cache, config)
        self.events = JobEvents()
        self.prompt_filter = config.prompt_filter()
        self.loras = LoraFolder(config.lora_dir)
        self.critics = CriticSettings(config)
        # the engine's expander checks each expansion it paints; submit's checks draw the same
        # wildcards and details from the plain one
        self.plain_expander = config.expander()
        self.expander = GuardedExpander(self.plain_expander, self.prompt_filter)
        self.size_price = SizePrice.measured()
        self.watermark_key = server_key(config.watermark_key, config.watermark_key_file,
                                        config.data_dir)
        self._painter_factory = painter_factory or local_painter
        self.painter: Painter | None = None
        self.facts: ModelFacts | None = None
        self.model_identity = ""
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._nsfw = None
        self.batches: list[int] = []  # sizes of the batches run (for tests and benchmarks)
        self.start_times: dict[str, float] = {}  # model load and warm-up (GET /health)

    # -- life cycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Load the model, put jobs a crash left 'running' back in line, start the worker."""
        started = time.perf_counter()
        self.painter = self._painter_factory(self)
        self.facts = self.painter.facts
        self.expander.facts = self.facts
        # the family too: the same weights forced into another family (--family) paint others
        # the family and how the model runs (dtype, quantization, …) paint differently too
        loading = self.facts.describe.get("loading") or {}
        self.model_identity = f"{self.facts.name}@{self.facts.model_hash}/{self.facts.family}" + \
            "".join(f";{key}={value}" for key, value in sorted(loading.items()))
        loaded = time.perf_counter()
        # one step through every component, and the denoiser's trace, before the first
        # client: a request would otherwise pay them (docs/speed.md: server start)
        self.painter.warm_up()
        self.start_times = {"load_s": loaded - started, "warm_up_s": time.perf_counter() - loaded}
        recovered = self.queue.recover()
        if recovered:
            print(f"huajia serve: {recovered} job(s) interrupted by a crash are queued again")
        self._worker = threading.Thread(target=self._run, name="huajia-worker", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._worker:
            self._worker.join(timeout=30)

    @property
    def engine(self) -> Engine | None:
        """The engine when it is in this process (not behind Ray)."""
        return getattr(self.painter, "engine", None)

    @property
    def model_id(self) -> str:
        return self.facts.name if self.facts else self.config.model

    def model_names(self) -> list[str]:
        """The served model's id and every alias of it."""
        served = (self.model_id, self.config.model)
        return [self.model_id] + [name for name, target in self.config.model_aliases
                                  if target in ("", *served) and name != self.model_id]

    def model_details(self) -> dict | None:
        """The served model's family description (``ModelFacts.describe``; None before start)."""
        return (self.facts.describe or None) if self.facts else None

    def resolve_model(self, name: str | None) -> str:
        """A model name from a request → the served model's id, or a 4xx naming the choices."""
        if name in (None, "huajia") or name in self.model_names():
            return self.model_id
        raise HuajiaError(f"model '{short(name)}' is not served here; this server has "
                          f"{', '.join(repr(n) for n in self.model_names())} (GET /v1/models)")

    # -- submitting ----------------------------------------------------------------------
    def prepare(self, body: ImageGenerationBody) -> JobSpec:
        """Validate a body into a job (every 400 happens here, before anything is stored)."""
        self.resolve_model(body.model)
        self.prompt_filter.require_safe(body.prompt)
        if body.think:
            self.critics.check(body.critic)
            if body.critic == "shapes":  # the verifier must read the prompt: a 400 now
                check_plan(self.critics.make("shapes"),
                           plan_prompt(body.prompt, world=body.planner != "bands"))
        if body.hires_upscaler.lower() not in HIRES_UPSCALERS:
            raise HuajiaError(f"hires_upscaler '{body.hires_upscaler}' is not one of "
                              f"{', '.join(HIRES_UPSCALERS)} (upscaler files are for the CLI)")
        self.expander.check(body.expand, body.prompt)  # unknown wildcards, no LLM: a 400 now
        spec = JobSpec.from_body(body, self.loras, self._fresh_seed())
        self.check_cost(spec, self.painted(spec.request))
        return spec

    @staticmethod
    def _fresh_seed() -> int:
        return int.from_bytes(hashlib.sha256(f"{time.time_ns()}".encode()).digest()[:4], "big")

    def prepare_edit(self, form, image_data: bytes, mask_data: bytes | None, mode: str) -> JobSpec:
        """An edit or variation form (``serving.edits``) → the job; every 400 happens here."""
        self.resolve_model(form.model)
        if form.background == "transparent":
            raise HuajiaError("background 'transparent' is not supported: the models paint "
                              "opaque pictures; use background 'auto' or 'opaque'")
        image = open_picture(image_data, "image")
        mask = open_picture(mask_data, "mask") if mask_data else None
        if mode == "edit":
            read_mask(image, mask)  # another size, an empty mask, no mask and no alpha: 400
        prompt = form.prompt or describe_picture(image)
        self.prompt_filter.require_safe(prompt)
        width = height = None
        if form.size and form.size != "auto":
            width, height = parse_size(form.size)
        request = GenerationRequest(
            prompt, n=form.n, seed=form.seed if form.seed is not None else self._fresh_seed(),
            steps=form.steps or QUALITY_STEPS[form.quality], guidance=form.guidance,
            negative_prompt=form.negative_prompt, style=form.style, sharpen=form.sharpen,
            width=width, height=height)
        size = edit_size(image, (width, height) if width else None)
        check_partial_steps("steps × strength", request.steps, form.strength)
        self.check_cost(JobSpec(request), self.painted(request), size=size, strength=form.strength)
        return JobSpec(request, edit=EditInput(mode, as_png(image), as_png(mask) if mask else None,
                                               form.strength))

    def painted(self, request: GenerationRequest) -> list[Painted]:
        """What each picture of ``request`` paints (style, style_raw and expansion applied),
        refused when it is too long to price or the safety filter blocks it."""
        variants = painted_variants(request, self.plain_expander)
        longest = max(len(p.prompt) + len(p.negative) for p in variants)
        if longest > MAX_PAINTED_CHARS:
            raise HuajiaError(f"the prompt as painted (style, style_raw and expansion applied) "
                              f"is {longest:,} characters; at most {MAX_PAINTED_CHARS:,}: "
                              "shorten the prompt or style_raw")
        for variant in variants:
            self.prompt_filter.require_safe(variant.prompt)
            parse_weights(variant.prompt)  # style_raw's '(word:1.2' fails here, not in the worker
            parse_weights(variant.negative)
        return variants

    def check_cost(self, spec: JobSpec, painted: list[Painted], size: tuple[int, int] | None = None,
                   strength: float = 1.0) -> float:
        """Refuse, before it is queued, a job whose cost would pass ``max_cost`` (``size`` and
        ``strength``: an edit's size and strength); the cost of one it allows."""
        request, facts, edit_size = spec.request, self.facts, size
        size = size or (facts.paint_size(request) if facts else (request.width or 512,
                                                                 request.height or 512))
        if facts is not None:
            facts.check_size(size)  # e.g. Flux paints multiples of 16: a 400, not a failed job
            if request.hires_scale > 1 and strength == 1.0:  # and the hires pass's size
                facts.check_size(facts.hires_size(request))
        # the painted prompts in the model's own chunks (CLIP 75 tokens, T5 256-512)
        chunks = max(max(chunks_of(facts, p.prompt), chunks_of(facts, p.negative))
                     for p in painted)
        chunks += LLM_EXTRA_CHUNKS if request.expand == "llm" else 0
        steps = request.steps * strength
        native = facts.native_size if facts else None
        cost = job_cost(size, steps, request.n, chunks, spec.think, self.size_price, native)
        if request.hires_scale > 1:  # the second pass, at the scaled size
            hires = facts.hires_size(request) if facts else \
                tuple(round(side * request.hires_scale) for side in size)
            cost += job_cost(hires, (request.hires_steps or request.steps) * request.hires_denoise,
                             request.n, chunks, None, self.size_price, native)
        finished = edit_size or (facts.size_of(request) if facts else size)
        cost += self.size_price.upscaling(finished, request.n)  # upscale, screen, mark, PNG
        check_budget(cost, self.config.max_cost, size, request.steps, request.n, chunks,
                     spec.think is not None, finished)
        return cost

    def image_keys(self, spec: JobSpec, owner: str | None) -> list[str]:
        """Each picture's content address; a tenant's own unless --shared-cache (a repeat of
        another key's request must not come back from their entries, with their LoRA names)."""
        settings = {**self.config.output_settings(),
                    "watermark_key": key_digest(self.watermark_key)}
        if not self.config.shared_cache:
            settings = {**settings, "tenant": owner}
        return spec.image_keys(self.model_identity, self.loras, settings)

    def cached(self, spec: JobSpec, owner: str | None) -> list[bytes] | None:
        found = [self.cache.get(key) for key in self.image_keys(spec, owner)]
        return found if all(found) else None

    def submit(self, spec: JobSpec, owner: str | None) -> str:
        self.results.check_room(owner)
        job_id = self.queue.submit(spec.kind, spec.to_payload(), spec.batch_key(), owner)
        if self.config.log_prompts:
            LOG.info("job %s (%s): %s", job_id, spec.kind, spec.request.prompt)
        self._wake.set()
        return job_id

    async def wait(self, job_id: str, timeout: float = 600.0) -> Job:
        """A job once it is final, or as it is after ``timeout``. Polls on the event loop without
        holding a worker thread, so 100 waiting clients leave the thread pool to health checks,
        job status and the page."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.queue.get(job_id)
            if job is None or job.state in FINAL_STATES or time.monotonic() > deadline:
                return job
            await asyncio.sleep(0.05)

    def image_bytes(self, name: str) -> bytes | None:
        key, dot, suffix = name.rpartition(".")
        # result names are sha256 hex digests: anything else (a 4,000-character name the file
        # system would refuse) is no image, without touching the disk
        if suffix != "png" or not dot or len(key) != 64 or not key.isalnum():
            return None
        return self.images.get(key)

    def store_image(self, name: str, data: bytes, owner: str | None = None) -> None:
        self.images.put(name.rpartition(".")[0], data, owner)

    def result_images(self, job: Job) -> list[tuple[str, bytes, dict]]:
        """(file name, PNG bytes, item) for each image of a finished job."""
        out = []
        for item in (job.result or {}).get("images", []):
            data = self.image_bytes(item["file"])
            if data is not None:
                out.append((item["file"], data, item))
        return out

    # -- the worker ----------------------------------------------------------------------
    def _run(self) -> None:
        """Claim jobs and paint them: one batch at a time in this process, or up to the
        painter's ``concurrency`` at once when the painter is remote (Ray replicas)."""
        slots = threading.BoundedSemaphore(self.painter.concurrency)
        pool = ThreadPoolExecutor(self.painter.concurrency, thread_name_prefix="huajia-paint") \
            if self.painter.concurrency > 1 else None
        while not self._stop.is_set():
            if self.results.due():
                self.results.sweep()
            if not slots.acquire(timeout=0.5):
                continue
            jobs = self._next_batch()
            if not jobs:
                slots.release()
                self._wake.wait(timeout=0.5)
                self._wake.clear()
                continue
            self.batches.append(len(jobs))
            if pool is None:
                self._attempt(jobs, slots)
            else:
                pool.submit(self._attempt, jobs, slots)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)  # unfinished jobs are recovered

    def _attempt(self, jobs: list[Job], slots: threading.BoundedSemaphore) -> None:
        try:
            self._execute(jobs)
        except Cancelled:
            for job in jobs:
                self.events.publish(job.id, {"type": "cancelled"})
        except PainterLost as error:
            # a replica died under it: queue it again, up to a limit, after a pause in which
            # the cluster notices the loss (else the retry may meet the same dead replica)
            self._stop.wait(RETRY_WAIT_S)
            for job in jobs:
                if job.attempts < MAX_ATTEMPTS and self.queue.release(job):
                    self.events.publish(job.id, {"type": "requeued", "reason": str(error)})
                else:
                    self._fail(job, f"the painter died under this job {job.attempts} times "
                               f"({error})")
            self._wake.set()
        except Exception as error:  # noqa: BLE001 - a failed job must not stop the worker
            message = redact(str(error).splitlines()[0]) if str(error) else \
                type(error).__name__
            for job in jobs:
                self._fail(job, message)
        finally:
            slots.release()

    def _fail(self, job: Job, message: str) -> None:
        self.queue.finish(job, error=message)
        self.events.publish(job.id, {"type": "failed", "error": message})

    def _next_batch(self) -> list[Job]:
        while True:  # a loop, not recursion: a long --batch-wait-ms waits many rounds
            key = self.queue.oldest_batch_key()
            if key is None:
                return []
            limit = 1 if key.startswith(("think:", "edit:", "variation:")) else \
                self.config.max_batch
            count, oldest = self.queue.waiting(key)
            # wait for company, but never keep the oldest job waiting past the window
            remaining = self.config.batch_wait_s - (time.time() - oldest) \
                if count < limit and oldest is not None else 0.0
            if remaining <= 0:
                return self.queue.claim(limit=limit, batch_key=key)
            if self._stop.wait(min(remaining, 0.05)):
                return []

    def _execute(self, jobs: list[Job]) -> None:
        for job in jobs:
            self.events.publish(job.id, {"type": "running", "batch": len(jobs)})
        specs = [JobSpec.from_payload(job.payload, self.loras) for job in jobs]
        painter, first = self.painter, specs[0]
        if first.edit:
            outputs = [painter.edit(first)]
        elif first.think:
            outputs = [painter.think(first, on_thought=lambda i, t: self.events.publish(
                jobs[0].id, {"type": "thought", "image": i, **t.to_dict()}))]
        else:
            progress = _BatchProgress(self, jobs) if painter.streams_progress else None
            outputs = painter.generate(specs, on_step=progress)
        for job, spec, images in zip(jobs, specs, outputs, strict=True):
            items = [self._store(spec, index, key, image, infotext, job.owner)
                     for index, (key, (image, infotext)) in enumerate(zip(
                         self.image_keys(spec, job.owner), images, strict=True))]
            if self.queue.finish(job, result={"images": items, "created": int(time.time())}):
                self.events.publish(job.id, {"type": "done", "images": len(items)})
            else:  # cancelled or deleted meanwhile: keep none of its pictures
                self.results.drop_unclaimed(item["file"] for item in items)

    def _store(self, spec: JobSpec, index: int, key: str, image: Image.Image,
               infotext: str, owner: str | None) -> dict:
        image = self._screen(image)
        image = embed_watermark(image, self.watermark_key)
        data = png_bytes(image, infotext)
        name = f"{key}.png"
        self.store_image(name, data, owner)
        self.cache.put(key, data, owner)
        return result_item(spec, index, name, infotext)

    def _screen(self, image: Image.Image) -> Image.Image:
        """The NSFW policy: blur what nudenet flags, or refuse the whole job."""
        if self.config.nsfw == "off":
            return image
        if self._nsfw is None:
            from huajia.scorers.nsfw import NsfwDetector

            self._nsfw = NsfwDetector()
        score = self._nsfw.score(image)
        if score < self.config.nsfw_threshold:
            return image
        if self.config.nsfw == "refuse":
            raise HuajiaError("the picture was withheld by the image safety check (nsfw score "
                              f"{score:.2f} ≥ {self.config.nsfw_threshold})")
        return image.filter(ImageFilter.GaussianBlur(radius=max(image.size) / 16))


def result_item(spec: JobSpec, index: int, name: str, infotext: str | None) -> dict:
    """One image of a job's result; ``revised_prompt`` is the prompt actually painted (styles
    and expansion applied), read from the picture's infotext, as OpenAI means it."""
    revised = painted_prompt(infotext) if infotext else spec.request.prompt
    return {"file": name, "seed": spec.request.seed + index, "revised_prompt": revised}


def png_infotext(data: bytes) -> str | None:
    with Image.open(io.BytesIO(data)) as image:
        text = image.info.get("parameters")
    return str(text) if text else None


class _BatchProgress:
    """Step progress of a running batch to its jobs' event streams; stops a batch whose jobs
    were all cancelled."""

    def __init__(self, service: ImageService, jobs: list[Job]):
        self.service, self.jobs = service, jobs

    def __call__(self, done: int, total: int) -> None:
        queue = self.service.queue
        if all(queue.get(j.id).state == "cancelled" for j in self.jobs):
            raise Cancelled()
        for job in self.jobs:
            self.service.events.publish(job.id, {"type": "progress", "step": done, "total": total})


def local_painter(service: ImageService) -> LocalPainter:
    """The default: the server's model in this process."""
    config = service.config
    engine = Engine(config.model, vocabulary=unknown_words, reword=reword,
                    expander=service.expander,
                    family=config.family, load=config.load_options())
    return LocalPainter(engine, service.critics)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
