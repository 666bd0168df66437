"""The HTTP API (FastAPI): OpenAI-compatible image generation, async jobs with an SSE stream,
provenance checks and the web page. ``create_app(config)`` builds it; ``huajia serve`` runs it.

Nothing here touches the model: requests become durable jobs for the service's worker, cache hits
are answered straight from disk, and every error a client can cause is a 4xx in OpenAI's shape.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import io
import json
import secrets
import time
import urllib.parse
from collections.abc import Callable
from contextlib import asynccontextmanager
from importlib import resources
from typing import Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from PIL import Image, UnidentifiedImageError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from huajia import __version__
from huajia.engine.styles import load_styles
from huajia.errors import HuajiaError
from huajia.serving.config import ServeConfig
from huajia.serving.connections import RequestGuard, error_body
from huajia.serving.edits import ImageEditForm, ImageVariationForm, read_form
from huajia.serving.encoding import (  # noqa: F401 - encode_as: public
    Reencoder,
    ReencodingBusy,
    encode_as,
)
from huajia.serving.jobs import JobSpec, redact, short
from huajia.serving.moderation import ModerationUnavailable
from huajia.serving.provenance import check_provenance
from huajia.serving.queue import Job
from huajia.serving.ratelimit import TokenBuckets
from huajia.serving.retention import StoreFull
from huajia.serving.schemas import (
    ErrorBody,
    ImageData,
    ImageGenerationBody,
    ImagesResponse,
    JobInfo,
    ModelInfo,
    ModelList,
    VerifyBody,
    VerifyResult,
)
from huajia.serving.service import FINAL_STATES, ImageService, b64, png_infotext, result_item

MAX_VERIFY_PIXELS = 16 * 10**6  # provenance checks: 4096x4096 is plenty for any result here
MAX_MESSAGE_CHARS = 600  # an error message never carries more of what a client sent
ERRORS: dict = {status: {"model": ErrorBody} for status in (400, 401, 404, 409, 429, 507)}


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.kind, self.param, self.code = status, kind, param, code
        self.headers = headers or {}


def _error(status: int, message: str, kind: str, param=None, code=None, headers=None):
    # a client never learns the server's folders (LoRA, model and data paths), nor gets a
    # long value it sent echoed back
    message = redact(message)
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[:MAX_MESSAGE_CHARS] + "…"
    return JSONResponse(error_body(message, code, kind, short(param) if param else None),
                        status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError):
        return _error(error.status, str(error), error.kind, error.param, error.code, error.headers)

    @app.exception_handler(HuajiaError)
    async def huajia_error(request: Request, error: HuajiaError):
        return _error(400, str(error), "invalid_request_error")

    @app.exception_handler(ModerationUnavailable)
    async def moderation_down(request: Request, error: ModerationUnavailable):
        return _error(503, str(error), "server_error", code="moderation_unavailable",
                      headers={"Retry-After": "10"})

    @app.exception_handler(ReencodingBusy)
    async def reencoding_busy(request: Request, error: ReencodingBusy):
        return _error(503, str(error), "server_error", code="server_busy",
                      headers={"Retry-After": "5"})

    @app.exception_handler(StoreFull)
    async def store_full(request: Request, error: StoreFull):
        return _error(507, str(error), "server_error", code="insufficient_storage")

    @app.exception_handler(Exception)
    async def server_error(request: Request, error: Exception):
        # a bug: still an error in OpenAI's shape, naming no server path (the log has the rest)
        return _error(500, f"internal error ({type(error).__name__}); the server log has the "
                      "details", "server_error", code="internal_error")

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError):
        first = error.errors()[0] if error.errors() else {}
        where = short(".".join(str(p) for p in first.get("loc", ()) if p != "body"))
        message = f"{where}: {first.get('msg', 'invalid request')}" if where else \
            str(first.get("msg", "invalid request body; send JSON"))
        return _error(400, message, "invalid_request_error", where or None, "invalid_value")

    # starlette's class: FastAPI's subclasses it, and unknown routes (404) and methods (405)
    # raise starlette's own, which a handler for FastAPI's would miss
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        kind = "not_found_error" if error.status_code == 404 else "invalid_request_error"
        message = {404: f"no route {request.url.path}; see /docs for the API",
                   405: f"{request.method} is not allowed on {request.url.path}"}.get(
                       error.status_code, str(error.detail))
        return _error(error.status_code, message, kind,
                      headers=getattr(error, "headers", None))


def _signature(secret: bytes, name: str, expires: int) -> str:
    return hmac.new(secret, f"{name}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]


def _secret(service: ImageService) -> bytes:
    path = service.config.data_dir / "url-secret"
    if not path.exists():
        path.write_bytes(secrets.token_bytes(32))
    return path.read_bytes()


class Auth:
    """API keys and rate limits: FastAPI dependencies (``Depends(auth.caller)``)."""

    def __init__(self, config: ServeConfig):
        self.config, self.keys = config, set(config.api_keys)
        self.buckets = TokenBuckets(config.rate, config.burst)

    def caller(self, request: Request) -> str:
        """The API key (Bearer; GET routes also take ?key= for browsers' <img> and SSE)."""
        if not self.keys:
            return "anonymous"
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else None
        if token is None and request.method == "GET":
            token = request.query_params.get("key")
        if token not in self.keys:
            raise ApiError(401, "missing or unknown API key; send 'Authorization: Bearer KEY'",
                           "authentication_error", code="invalid_api_key")
        return hashlib.sha256(token.encode()).hexdigest()[:12]

    def limited(self, request: Request) -> str:
        owner = self.caller(request)
        # without keys, one bucket per client address: one client's burst is not another's 429
        bucket = owner if self.keys else f"addr:{request.client.host if request.client else '?'}"
        wait = self.buckets.take(bucket)
        if wait > 0:
            config = self.config
            raise ApiError(429, f"rate limit reached ({config.rate:g}/s, burst {config.burst}); "
                           f"retry in {wait:.1f} s", "rate_limit_error", code="rate_limit_exceeded",
                           headers={"Retry-After": str(TokenBuckets.retry_after(wait))})
        return owner


def create_app(config: ServeConfig, service: ImageService | None = None) -> FastAPI:
    service = service or ImageService(config)
    auth = Auth(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await run_in_threadpool(service.start)
        yield
        await run_in_threadpool(service.stop)
        app.state.files.encoder.close()

    # with keys, the schema and docs move behind the key too (only /health stays open)
    docs = {} if not auth.keys else {"openapi_url": None, "docs_url": None, "redoc_url": None}
    app = FastAPI(title="huajia", version=__version__, lifespan=lifespan, **docs,
                  description="Text-to-image that thinks while it paints (OpenAI-compatible).")
    app.state.service = service
    app.add_middleware(RequestGuard, limit=config.max_body_bytes, idle_s=config.body_idle_s,
                       timeout_s=config.body_timeout_s)
    _install_error_handlers(app)
    files = app.state.files = SignedFiles(_secret(service), service)
    service.results.forget = files.encoder.forget
    if auth.keys:
        _private_docs(app, auth)
    _service_routes(app, service, auth)
    _image_routes(app, service, auth, files)
    _job_routes(app, service, auth, files)
    return app


class SignedFiles:
    """Result images by URL: signed names work without a key (for <img> tags) until they
    expire (``clock``: the wall clock, seconds since the epoch; tests move it)."""

    def __init__(self, secret: bytes, service: ImageService,
                 clock: Callable[[], float] = time.time):
        self.secret, self.service, self.clock = secret, service, clock
        self.encoder = Reencoder()

    def url(self, request: Request, name: str) -> str:
        expires = int(self.clock()) + self.service.config.url_ttl_s
        return (f"{str(request.base_url).rstrip('/')}/v1/images/files/{name}"
                f"?exp={expires}&sig={_signature(self.secret, name, expires)}")

    def valid(self, name: str, sig: str, expires: int) -> bool:
        """A signature of this name and expiry, not yet expired."""
        return expires >= self.clock() and hmac.compare_digest(
            sig.encode(), _signature(self.secret, name, expires).encode())

    async def response(self, request: Request, response_format: str,
                       images: list[tuple[str, bytes, dict]], output_format: str = "png",
                       quality: int = 100) -> ImagesResponse:
        data = []
        for name, png, item in images:
            common = {"revised_prompt": item["revised_prompt"], "seed": item["seed"]}
            if response_format == "url":
                url = self.url(request, name)
                if output_format != "png":
                    url += f"&format={output_format}&quality={quality}"
                data.append(ImageData(url=url, **common))
            else:
                encoded = await self.encoder.encode(name, png, output_format, quality)
                data.append(ImageData(b64_json=b64(encoded), **common))
        size = None
        if images:  # the header alone: the size of what was painted and upscaled
            with Image.open(io.BytesIO(images[0][1])) as first:
                size = f"{first.width}x{first.height}"
        return ImagesResponse(created=int(time.time()), data=data, model=self.service.model_id,
                              size=size, output_format=output_format)


def _private_docs(app: FastAPI, auth: Auth) -> None:
    @app.get("/openapi.json", include_in_schema=False)
    def openapi_document(owner: str = Depends(auth.caller)) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    def swagger(request: Request, owner: str = Depends(auth.caller)) -> HTMLResponse:
        # the key goes back into the page only URL-encoded: a '<script>' key is not reflected
        key = urllib.parse.quote(request.query_params.get("key", ""), safe="")
        return get_swagger_ui_html(openapi_url=f"/openapi.json?key={key}", title="huajia")


def _service_routes(app: FastAPI, service: ImageService, auth: Auth) -> None:
    @app.get("/health", tags=["service"])
    def health() -> dict:
        return {"status": "ok", "model": service.model_id, "queue": service.queue.counts(),
                "start": {k: round(v, 3) for k, v in service.start_times.items()}}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page(owner: str = Depends(auth.caller)) -> HTMLResponse:
        html = resources.files("huajia.serving").joinpath("web/index.html").read_text("utf-8")
        return HTMLResponse(html)

    @app.get("/v1/models", response_model=ModelList, responses=ERRORS, tags=["images"])
    def models(owner: str = Depends(auth.caller)) -> ModelList:
        details = service.model_details()
        return ModelList(data=[ModelInfo(id=name, created=0, huajia=details)
                               for name in service.model_names()])

    @app.get("/v1/models/{model_id:path}", response_model=ModelInfo, responses=ERRORS,
             tags=["images"])
    def model(model_id: str, owner: str = Depends(auth.caller)) -> ModelInfo:
        if model_id not in service.model_names():
            raise ApiError(404, f"model '{short(model_id)}' is not served here; this server has "
                           f"{', '.join(repr(n) for n in service.model_names())}",
                           param="model", code="model_not_found")
        return ModelInfo(id=model_id, created=0, huajia=service.model_details())

    @app.get("/v1/styles", tags=["images"], responses=ERRORS)
    def styles(owner: str = Depends(auth.caller)) -> dict:
        return {"data": [{"name": s.name, "prompt": s.prompt, "negative_prompt": s.negative_prompt}
                         for s in load_styles().values()]}

    @app.post("/v1/provenance/verify", response_model=VerifyResult, responses=ERRORS,
              tags=["provenance"])
    def provenance(body: VerifyBody, owner: str = Depends(auth.limited)) -> VerifyResult:
        # made_here only for this server's own key
        return VerifyResult(**check_provenance(_decode_image(body.image),
                                               service.watermark_key).to_dict())


async def _waited(service: ImageService, job_id: str) -> Job:
    """The finished job; a stop (uvicorn cancels open requests after its grace period) or a
    job still running after the wait is a 503 naming the saved job, never a 500."""
    poll = f"GET /v1/jobs/{job_id}/result"
    try:
        job = await service.wait(job_id)
    except asyncio.CancelledError:
        raise ApiError(503, f"the server is stopping; job {job_id} is saved and finishes after the "
                       f"restart: {poll}", "server_error", code="server_shutting_down",
                       headers={"Retry-After": "10"}) from None
    if job is not None and job.state not in FINAL_STATES:
        raise ApiError(503, f"job {job_id} is still running; {poll} when it is done", "server_error",
                       code="job_still_running", headers={"Retry-After": "10"})
    return job


def _image_routes(app: FastAPI, service: ImageService, auth: Auth, files: SignedFiles) -> None:
    @app.post("/v1/images/generations", response_model=ImagesResponse, responses=ERRORS,
              tags=["images"])
    async def generations(body: ImageGenerationBody, request: Request,
                          owner: str = Depends(auth.limited)) -> ImagesResponse:
        # validation reads LoRA files, tokenizes and filters: in a worker thread, not on the loop
        spec = await run_in_threadpool(service.prepare, body)
        hits = await run_in_threadpool(service.cached, spec, owner)
        output = {"output_format": body.output_format, "quality": body.output_compression}
        if hits is not None:
            return await files.response(request, body.response_format,
                                        _cache_items(service, spec, hits, owner), **output)
        job_id = service.submit(spec, owner)
        job = await _waited(service, job_id)
        return await files.response(request, body.response_format, _finished(service, job), **output)

    async def repaint(request: Request, owner: str, form_model, mode: str) -> ImagesResponse:
        form, image, mask = await read_form(request, form_model)
        spec = await run_in_threadpool(service.prepare_edit, form, image, mask, mode)
        output = {"output_format": form.output_format, "quality": form.output_compression}
        hits = await run_in_threadpool(service.cached, spec, owner)
        if hits is not None:
            return await files.response(request, form.response_format,
                                        _cache_items(service, spec, hits, owner), **output)
        job = await _waited(service, service.submit(spec, owner))
        return await files.response(request, form.response_format, _finished(service, job), **output)

    @app.post("/v1/images/edits", response_model=ImagesResponse, responses=ERRORS, tags=["images"],
              openapi_extra=_multipart(ImageEditForm, mask=True))
    async def edits(request: Request, owner: str = Depends(auth.limited)) -> ImagesResponse:
        """OpenAI's image edits: the masked area (white, or transparent) painted again."""
        return await repaint(request, owner, ImageEditForm, "edit")

    @app.post("/v1/images/variations", response_model=ImagesResponse, responses=ERRORS,
              tags=["images"], openapi_extra=_multipart(ImageVariationForm, mask=False))
    async def variations(request: Request, owner: str = Depends(auth.limited)) -> ImagesResponse:
        """OpenAI's image variations: the whole picture painted again (strength 0.6)."""
        return await repaint(request, owner, ImageVariationForm, "variation")

    @app.get("/v1/images/files/{name}", tags=["images"], responses=ERRORS,
             response_class=Response)
    async def image_file(name: str, request: Request, sig: str = "", exp: int = 0,
                   format: Literal["png", "jpeg", "webp"] = "png",
                   quality: int = Query(100, ge=0, le=100)) -> Response:
        data = await run_in_threadpool(_file_or_404, name, request, sig, exp)  # a disk read
        return Response(await files.encoder.encode(name, data, format, quality),
                        media_type=f"image/{format}")

    def _file_or_404(name: str, request: Request, sig: str, exp: int) -> bytes:
        """A result picture for a valid, unexpired signature, or for its own tenant's key."""
        data = service.image_bytes(name)
        if not files.valid(name, sig, exp):
            owner = auth.caller(request)  # no valid, unexpired signature: an API key will do
            if data is not None and auth.keys and \
                    service.images.owner(name.rpartition(".")[0]) not in (owner, None):
                data = None  # another tenant's picture: as if it were not there
        if data is None:
            raise ApiError(404, f"no image '{short(name)}'", "not_found_error", "name")
        return data

    @app.delete("/v1/images/files/{name}", tags=["images"], responses=ERRORS)
    def delete_image_file(name: str, request: Request, sig: str = "", exp: int = 0) -> dict:
        """Delete one result picture, its cache entry and the caller's jobs that hold it (a
        synchronous generation's job, whose id its caller never saw)."""
        _file_or_404(name, request, sig, exp)
        owner = auth.caller(request) if auth.keys else None
        for job in service.queue.naming(name):
            if owner is None or job.owner == owner:
                service.results.delete(job)
                service.events.forget(job.id)
        service.results.drop_unclaimed([name])
        if service.image_bytes(name) is not None:
            raise ApiError(409, "another tenant's job holds this picture too; it stays until "
                           "they delete it", code="picture_in_use")
        return {"id": name, "object": "image.file.deleted", "deleted": True}


def _job_routes(app: FastAPI, service: ImageService, auth: Auth, files: SignedFiles) -> None:
    def job_or_404(job_id: str, owner: str) -> Job:
        job = service.queue.get(job_id)
        if job is None or (auth.keys and job.owner != owner):
            raise ApiError(404, f"no job '{short(job_id)}'", "not_found_error", "job_id")
        return job

    @app.post("/v1/jobs", response_model=JobInfo, status_code=202, responses=ERRORS,
              tags=["jobs"])
    def submit_job(body: ImageGenerationBody, owner: str = Depends(auth.limited)) -> JobInfo:
        return _job_info(service.queue.get(service.submit(service.prepare(body), owner)))

    @app.get("/v1/jobs/{job_id}", response_model=JobInfo, responses=ERRORS, tags=["jobs"])
    def job_status(job_id: str, owner: str = Depends(auth.caller)) -> JobInfo:
        return _job_info(job_or_404(job_id, owner))

    @app.get("/v1/jobs/{job_id}/result", response_model=ImagesResponse, responses=ERRORS,
             tags=["jobs"])
    async def job_result(job_id: str, request: Request, owner: str = Depends(auth.caller),
                   response_format: Literal["b64_json", "url"] = "b64_json",
                   output_format: Literal["png", "jpeg", "webp"] = "png",
                   output_compression: int = Query(100, ge=0, le=100)) -> ImagesResponse:
        job = job_or_404(job_id, owner)
        if job.state != "done":
            raise ApiError(409, f"job '{job_id}' is {job.state}, not done"
                           + (f": {job.error}" if job.error else ""), code="job_not_done")
        return await files.response(request, response_format, service.result_images(job),
                              output_format, output_compression)

    @app.delete("/v1/jobs/{job_id}", tags=["jobs"], responses=ERRORS)
    def delete_job(job_id: str, owner: str = Depends(auth.caller)) -> dict:
        """Delete a job: its prompt, its result, its pictures and their cache entries (its
        signed URLs answer 404 from now on, also after a restart). A running job is cancelled."""
        job = job_or_404(job_id, owner)
        service.results.delete(job)
        service.events.forget(job.id)
        return {"id": job.id, "object": "image.job.deleted", "deleted": True}

    @app.post("/v1/jobs/{job_id}/cancel", response_model=JobInfo, responses=ERRORS,
              tags=["jobs"])
    def cancel_job(job_id: str, owner: str = Depends(auth.caller)) -> JobInfo:
        job = job_or_404(job_id, owner)
        if service.queue.cancel(job.id):
            service.events.publish(job.id, {"type": "cancelled"})
        return _job_info(service.queue.get(job.id))

    @app.get("/v1/jobs/{job_id}/events", tags=["jobs"], responses=ERRORS,
             response_class=StreamingResponse)
    async def job_events(job_id: str, owner: str = Depends(auth.caller)) -> StreamingResponse:
        job_or_404(job_id, owner)
        return StreamingResponse(_sse(service, job_id), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})


def _multipart(form_model, mask: bool) -> dict:
    """The OpenAPI request body of a multipart form: its text fields and the picture files."""
    schema = form_model.model_json_schema()
    schema["properties"]["image"] = {"type": "string", "format": "binary"}
    if mask:
        schema["properties"]["mask"] = {"type": "string", "format": "binary"}
    schema["required"] = ["image", *schema.get("required", [])]
    return {"requestBody": {"required": True,
                            "content": {"multipart/form-data": {"schema": schema}}}}


def _finished(service: ImageService, job: Job) -> list[tuple[str, bytes, dict]]:
    if job.state == "failed":
        raise ApiError(400, f"generation failed: {job.error}", code="generation_failed")
    if job.state == "cancelled":
        raise ApiError(409, f"job '{job.id}' was cancelled", code="job_cancelled")
    return service.result_images(job)


def _cache_items(service: ImageService, spec: JobSpec, hits: list[bytes], owner: str):
    items = []
    for index, (key, data) in enumerate(zip(service.image_keys(spec, owner), hits, strict=True)):
        name = f"{key}.png"
        if service.image_bytes(name) is None:  # the file may have been cleaned up
            service.results.check_room(owner)
            service.store_image(name, data, owner)
        items.append((name, data, result_item(spec, index, name, png_infotext(data))))
    return items


def _job_info(job: Job) -> JobInfo:
    return JobInfo(id=job.id, status=job.state, created=int(job.created), kind=job.kind,
                   error=job.error)


def _decode_image(text: str) -> Image.Image:
    if text.startswith("data:"):
        text = text.split(",", 1)[-1]
    try:
        image = Image.open(io.BytesIO(base64.b64decode(text, validate=True)))
        # the header alone says the size: refuse a decompression bomb before decoding it
        if image.width * image.height > MAX_VERIFY_PIXELS:
            raise ApiError(400, f"image is {image.width}x{image.height}; at most "
                           f"{MAX_VERIFY_PIXELS // 10**6} megapixels can be checked",
                           param="image")
        image.load()
    except Image.DecompressionBombError:
        raise ApiError(400, f"image is too large to check; at most "
                       f"{MAX_VERIFY_PIXELS // 10**6} megapixels", param="image") from None
    except (binascii.Error, ValueError):
        raise ApiError(400, "image is not valid base64", param="image") from None
    except (UnidentifiedImageError, OSError):
        raise ApiError(400, "image is not a readable picture (PNG, JPEG or WebP)",
                       param="image") from None
    return image


async def _sse(service: ImageService, job_id: str):
    """Stream a job's events as they come, then its final state."""
    index = 0
    while True:
        events = service.events.since(job_id, index)
        index += len(events)
        for event in events:
            yield f"event: {event['type']}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n"
        job = service.queue.get(job_id)
        if job is None or job.state in FINAL_STATES:
            final = {"type": "end", "status": job.state if job else "unknown",
                     "error": job.error if job else None}
            yield f"event: end\ndata: {json.dumps(final)}\n\n"
            return
        await asyncio.sleep(0.1)
