"""The image service behind the HTTP API: durable jobs, one engine worker, micro-batching, cache.

A request becomes a job on disk (SQLite, WAL) before it is acknowledged. One worker thread owns
the engine (pipelines are not thread-safe) and takes the oldest queued job together with every
queued job that can share its pipeline call (same steps, guidance, size, scheduler, LoRAs), up to
``max_batch``, after waiting at most ``batch_wait_s`` for company. Results are content-addressed:
each image's key hashes the model, every parameter and its seed, so a repeat is served from the
cache without touching the model. Progress and thoughts go to ``JobEvents`` for the SSE stream.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from PIL import Image, ImageFilter

from huajia.engine.engine import Engine, batch_key
from huajia.engine.infotext import png_bytes
from huajia.engine.request import GenerationRequest, LoraSpec, parse_size
from huajia.engine.styles import get_style
from huajia.errors import HuajiaError
from huajia.serving.cache import ResultCache, cache_key
from huajia.serving.config import ServeConfig
from huajia.serving.events import JobEvents
from huajia.serving.provenance import embed_watermark
from huajia.serving.queue import Job, JobQueue
from huajia.serving.safety import PromptFilter
from huajia.serving.schemas import OPENAI_STYLES, QUALITY_STEPS, ImageGenerationBody

FINAL_STATES = ("done", "failed", "cancelled")


class Cancelled(Exception):
    """Every job of a running batch was cancelled: stop denoising."""


def request_from_body(body: ImageGenerationBody, seed: int, lora_dir: Path | None
                      ) -> GenerationRequest:
    width = height = None
    if body.size and body.size != "auto":
        width, height = parse_size(body.size)
    style = "none" if body.style in (None, *OPENAI_STYLES) else body.style
    steps = body.steps or QUALITY_STEPS[body.quality]
    return GenerationRequest(
        prompt=body.prompt, negative_prompt=body.negative_prompt, seed=seed, steps=steps,
        guidance=body.guidance, width=width, height=height, n=body.n, style=style,
        scheduler=body.scheduler, loras=tuple(_lora(name, lora_dir) for name in body.loras))


def _lora(text: str, lora_dir: Path | None) -> LoraSpec:
    spec = LoraSpec.parse(text)
    if lora_dir is None:
        raise HuajiaError("this server has no LoRA folder; start it with --lora-dir DIR")
    name = Path(spec.path)
    if name.is_absolute() or ".." in name.parts:
        raise HuajiaError(f"LoRA '{spec.path}' must be a name inside the server's LoRA folder")
    path = lora_dir / name
    if not path.exists() and path.with_suffix(".safetensors").exists():
        path = path.with_suffix(".safetensors")
    if not path.exists():
        known = sorted(p.stem for p in lora_dir.glob("*.safetensors")
                       if not p.stem.endswith("_emb"))  # a LoRA's new words, not a LoRA
        raise HuajiaError(f"unknown LoRA '{spec.path}'; this server has: {', '.join(known) or 'none'}")
    return LoraSpec(str(path), spec.scale)


def image_keys(model_identity: str, payload: dict) -> list[str]:
    """One content address per image: everything that decides its pixels, with its own seed."""
    params = {k: v for k, v in payload.items() if k not in ("n", "response_format", "user")}
    return [cache_key(model_identity, {**params, "seed": payload["seed"] + i})
            for i in range(payload["n"])]


class ImageService:
    def __init__(self, config: ServeConfig, engine_factory: Callable[[], Engine] | None = None):
        self.config = config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.queue = JobQueue(config.data_dir / "jobs.sqlite")
        self.cache = ResultCache(config.data_dir / "cache", config.cache_max_bytes)
        self.images_dir = config.data_dir / "images"
        self.images_dir.mkdir(exist_ok=True)
        self.events = JobEvents()
        self.prompt_filter = PromptFilter()
        self._engine_factory = engine_factory or (lambda: Engine(config.model))
        self.engine: Engine | None = None
        self.model_identity = ""
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._nsfw = None
        self.batches: list[int] = []  # sizes of the batches run (for tests and benchmarks)

    # -- life cycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Load the model, put jobs a crash left 'running' back in line, start the worker."""
        self.engine = self._engine_factory()
        self.model_identity = f"{self.engine.source.name}@{self.engine.model_hash}"
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
    def model_id(self) -> str:
        return self.engine.source.name if self.engine else self.config.model

    # -- submitting ----------------------------------------------------------------------
    def prepare(self, body: ImageGenerationBody) -> dict:
        """Validate a body into a job payload (400s happen here, before anything is stored)."""
        if body.model not in (None, self.model_id, "huajia"):
            raise HuajiaError(f"model '{body.model}' is not served here; this server has "
                              f"'{self.model_id}' (GET /v1/models)")
        self.prompt_filter.require_safe(body.prompt)
        seed = body.seed if body.seed is not None else int.from_bytes(
            hashlib.sha256(f"{time.time_ns()}".encode()).digest()[:4], "big")
        request = request_from_body(body, seed, self.config.lora_dir)
        get_style(request.style)  # unknown style → 400 now, not a failed job later
        payload = body.model_dump()
        payload.update(seed=seed, steps=request.steps)
        return payload

    def request_of(self, payload: dict) -> GenerationRequest:
        """A stored job payload → the engine's request (the seed was fixed at submit time)."""
        return request_from_body(ImageGenerationBody(**body_fields(payload)), payload["seed"],
                                 self.config.lora_dir)

    def cached(self, payload: dict) -> list[bytes] | None:
        if self.config.serial:
            return None
        found = [self.cache.get(key) for key in image_keys(self.model_identity, payload)]
        return found if all(found) else None

    def submit(self, payload: dict, owner: str | None) -> str:
        if payload["think"]:
            key = f"think:{time.time_ns()}"  # thinking jobs run alone
        else:
            key = repr(batch_key(self.request_of(payload)))
        job_id = self.queue.submit("think" if payload["think"] else "generate", payload, key, owner)
        self._wake.set()
        return job_id

    def wait(self, job_id: str, timeout: float = 600.0) -> Job:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.queue.get(job_id)
            if job is None or job.state in FINAL_STATES:
                return job
            self.events.wait(job_id, timeout=0.2)
        raise HuajiaError(f"job {job_id} did not finish in {timeout:.0f} s; poll GET /v1/jobs/{job_id}")

    def image_bytes(self, name: str) -> bytes | None:
        path = self.images_dir / name
        return path.read_bytes() if path.is_file() and path.suffix == ".png" else None

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
        while not self._stop.is_set():
            jobs = self._next_batch()
            if not jobs:
                self._wake.wait(timeout=0.5)
                self._wake.clear()
                continue
            self.batches.append(len(jobs))
            try:
                self._execute(jobs)
            except Cancelled:
                for job in jobs:
                    self.events.publish(job.id, {"type": "cancelled"})
            except Exception as error:  # noqa: BLE001 - a failed job must not stop the worker
                message = str(error).splitlines()[0] if str(error) else type(error).__name__
                for job in jobs:
                    self.queue.finish(job, error=message)
                    self.events.publish(job.id, {"type": "failed", "error": message})

    def _next_batch(self) -> list[Job]:
        key = self.queue.oldest_batch_key()
        if key is None:
            return []
        limit = 1 if self.config.serial or key.startswith("think:") else self.config.max_batch
        count, oldest = self.queue.waiting(key)
        if count < limit and oldest is not None:
            # wait for company, but never keep the oldest job waiting past the window
            remaining = self.config.batch_wait_s - (time.time() - oldest)
            if remaining > 0:
                self._stop.wait(min(remaining, 0.05))
                return self._next_batch() if not self._stop.is_set() else []
        return self.queue.claim(limit=limit, batch_key=key)

    def _execute(self, jobs: list[Job]) -> None:
        for job in jobs:
            self.events.publish(job.id, {"type": "running", "batch": len(jobs)})
        if jobs[0].kind == "think":
            outputs = [self._think(jobs[0])]
        else:
            outputs = self._generate(jobs)
        for job, images in zip(jobs, outputs, strict=True):
            keys = image_keys(self.model_identity, job.payload)
            items = [self._store(job, index, key, image, infotext)
                     for index, (key, (image, infotext)) in enumerate(zip(keys, images,
                                                                          strict=True))]
            if self.queue.finish(job, result={"images": items, "created": int(time.time())}):
                self.events.publish(job.id, {"type": "done", "images": len(items)})

    def _generate(self, jobs: list[Job]) -> list[list[tuple[Image.Image, str]]]:
        requests = [self.request_of(j.payload) for j in jobs]

        def on_step(done: int, total: int) -> None:
            if all(self.queue.get(j.id).state == "cancelled" for j in jobs):
                raise Cancelled()
            for job in jobs:
                self.events.publish(job.id, {"type": "progress", "step": done, "total": total})

        results = self.engine.generate_batch(requests, on_step=on_step)
        return [list(zip(r.images, r.infotexts, strict=True)) for r in results]

    def _think(self, job: Job) -> list[tuple[Image.Image, str]]:
        from huajia.thinking.critics import make_critic
        from huajia.thinking.loop import Thinker, ThinkOptions

        payload = job.payload
        request = self.request_of(payload)
        options = ThinkOptions(pauses=payload["pauses"], budget=payload["budget"],
                               threshold=payload["threshold"], restarts=payload["restarts"],
                               # jobs queued before these fields existed keep the defaults
                               max_repaints=payload.get("repaints", ThinkOptions.max_repaints),
                               steer=payload.get("steer", ThinkOptions.steer),
                               compose_tries=payload.get("compose_tries",
                                                         ThinkOptions.compose_tries))
        thinker = Thinker(self.engine, make_critic(payload["critic"]), options)
        images = []
        for i in range(request.n):
            single = replace(request, n=1, seed=request.seed + i)
            result = thinker.think(single, on_thought=lambda t, i=i: self.events.publish(
                job.id, {"type": "thought", "image": i, **t.to_dict()}))
            images.append((result.image, result.infotext))
        return images

    def _store(self, job: Job, index: int, key: str, image: Image.Image, infotext: str) -> dict:
        image = self._screen(image)
        image = embed_watermark(image, self.config.watermark_key)
        data = png_bytes(image, infotext)
        name = f"{key}.png"
        (self.images_dir / name).write_bytes(data)
        if not self.config.serial:
            self.cache.put(key, data)
        return {"file": name, "seed": job.payload["seed"] + index,
                "revised_prompt": job.payload["prompt"]}

    def _screen(self, image: Image.Image) -> Image.Image:
        """The NSFW policy: blur what nudenet flags, or refuse the whole job."""
        if self.config.nsfw == "off":
            return image
        if self._nsfw is None:
            from huajia.curation.ops import ImageNsfwFilter

            self._nsfw = ImageNsfwFilter(score_threshold=self.config.nsfw_threshold)
        verdict = self._nsfw(None, image)
        if verdict.keep:
            return image
        if self.config.nsfw == "refuse":
            raise HuajiaError(f"the picture was withheld by the image safety check ({verdict.reason})")
        return image.filter(ImageFilter.GaussianBlur(radius=max(image.size) / 16))


def body_fields(payload: dict) -> dict:
    return {k: v for k, v in payload.items() if k in ImageGenerationBody.model_fields}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
