"""``JobSpec``: an HTTP request body validated once, at submit, into what the worker runs.

It holds the engine's ``GenerationRequest`` (seed fixed), the ``ThinkOptions`` of a thinking
job, and the LoRAs by the names the client used. It knows how it is stored in the queue
(``to_payload`` / ``from_payload``), which jobs it may share a pipeline call with
(``batch_key``) and the content address of each of its images (``image_keys``): a hash of the
*normalised* request (defaults filled in, style synonyms folded), the LoRA files' contents and
every server setting that changes the returned bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from huajia.engine.engine import batch_key
from huajia.engine.request import GenerationRequest, LoraSpec, parse_size
from huajia.errors import HuajiaError
from huajia.params import params
from huajia.serving.cache import cache_key
from huajia.serving.edits import EditInput
from huajia.serving.schemas import OPENAI_STYLES, QUALITY_STEPS
from huajia.thinking.options import ThinkOptions

PAYLOAD_VERSION = 2


LORA_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")


def _exists(path: Path) -> bool:
    """``path.exists()``, False for a name the file system refuses (too long, …)."""
    try:
        return path.exists()
    except OSError:
        return False


class LoraFolder:
    """The server's LoRA folder: names → files, checked at submit, hashed by content."""

    def __init__(self, folder: Path | None):
        self.folder = folder
        self._hashes: dict[tuple, str] = {}

    def resolve(self, text: str) -> tuple[LoraSpec, str]:
        """'NAME' or 'NAME:SCALE' → (the spec with the file's path, the name)."""
        spec = LoraSpec.parse(text)
        if self.folder is None:
            raise HuajiaError("this server has no LoRA folder; start it with --lora-dir DIR")
        name = Path(spec.path)
        if name.is_absolute() or ".." in name.parts:
            raise HuajiaError(f"LoRA '{spec.path}' must be a name inside the server's LoRA folder")
        path = next((candidate for candidate in self._candidates(self.folder / name)
                     if _exists(candidate)), None)
        if path is None:
            raise HuajiaError(f"unknown LoRA '{spec.path[:80]}'; this server has: "
                              f"{', '.join(self.names()) or 'none'}")
        self._check(path, spec.path)
        return LoraSpec(str(path), spec.scale), spec.path

    @staticmethod
    def _candidates(path: Path) -> list[Path]:
        return [path, *(path.with_name(path.name + suffix) for suffix in LORA_SUFFIXES)]

    def names(self) -> list[str]:
        """The LoRAs in the folder: files (safetensors, or pickled checkpoints such as
        DiffSynth-Studio's .ckpt) and diffusers or peft folders."""
        found = [p.stem for p in self.folder.iterdir()
                 if p.is_file() and p.suffix.lower() in LORA_SUFFIXES
                 and not p.stem.endswith("_emb")]  # a LoRA's new words, not a LoRA
        found += [p.name for p in self.folder.iterdir() if p.is_dir()]
        return sorted(set(found))

    def _check(self, path: Path, name: str) -> None:
        """A file the engine could not load is a 400 now, not a failed job later (the engine's
        own reader, so the server takes every format huajia paints with)."""
        from huajia.engine.lora import read_lora

        try:
            lora = read_lora(path)
        except HuajiaError as error:  # its message names the file: name it as the client did
            raise HuajiaError(str(error).replace(str(path), name)) from None
        if not any("lora" in key.lower() for key in lora.keys):
            raise HuajiaError(f"LoRA '{name}' holds no LoRA weights; replace it on the server")

    def content_hash(self, path: str) -> str:
        """sha256 of the LoRA's files (weights and new words), cached while they are unchanged."""
        files = sorted(Path(path).rglob("*.safetensors")) if Path(path).is_dir() else \
            [Path(path), Path(path).with_name(Path(path).stem + "_emb.safetensors")]
        stamp = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files
                      if f.exists())
        if stamp not in self._hashes:
            digest = hashlib.sha256()
            for name, _, _ in stamp:
                digest.update(Path(name).read_bytes())
            self._hashes[stamp] = digest.hexdigest()[:16]
        return self._hashes[stamp]


@dataclass(frozen=True)
class JobSpec:
    request: GenerationRequest  # the seed is always fixed here
    think: ThinkOptions | None = None  # None: plain generation
    critic: str = "shapes"
    lora_names: tuple[str, ...] = ()  # as the client named them, one per request.loras entry
    edit: EditInput | None = None  # an edit or variation of an uploaded picture

    @property
    def kind(self) -> str:
        return self.edit.mode if self.edit else "think" if self.think else "generate"

    @classmethod
    def from_body(cls, body, loras: LoraFolder, seed: int) -> JobSpec:
        """A request body (``ImageGenerationBody``) → the job; every 400 happens here."""
        width = height = None
        if body.size and body.size != "auto":
            width, height = parse_size(body.size)
        steps = body.steps if "steps" in body.model_fields_set else QUALITY_STEPS[body.quality]
        if body.background == "transparent":
            raise HuajiaError("background 'transparent' is not supported: the models paint "
                              "opaque pictures; use background 'auto' or 'opaque'")
        style = body.style
        guidance = body.guidance
        if style in OPENAI_STYLES and "guidance" not in body.model_fields_set:
            guidance = OPENAI_STYLES[style]
        resolved = [loras.resolve(text) for text in body.loras]
        fields = {name: getattr(body, name) for name in _http_fields(GenerationRequest)}
        request = GenerationRequest(
            body.prompt, **{**fields, "seed": body.seed if body.seed is not None else seed, "steps": steps,
               "style": style, "guidance": guidance, "width": width, "height": height,
               "loras": tuple(spec for spec, _ in resolved)})
        think = ThinkOptions(**{name: getattr(body, name) for name in _http_fields(ThinkOptions)}) \
            if body.think else None
        return cls(request, think, body.critic if body.think else "shapes",
                   tuple(name for _, name in resolved))

    # -- the queue's form ------------------------------------------------------------------
    def to_payload(self) -> dict:
        request = dataclasses.asdict(self.request)
        request["loras"] = [[name, spec.scale]
                            for name, spec in zip(self.lora_names, self.request.loras, strict=True)]
        return {"version": PAYLOAD_VERSION, "request": request, "critic": self.critic,
                "think": dataclasses.asdict(self.think) if self.think else None,
                "edit": self.edit.to_payload() if self.edit else None}

    @classmethod
    def from_payload(cls, payload: dict, loras: LoraFolder) -> JobSpec:
        if payload.get("version") != PAYLOAD_VERSION:
            raise HuajiaError("this job was queued by an older huajia; submit it again")
        fields = dict(payload["request"])
        resolved = [loras.resolve(f"{name}:{scale}") for name, scale in fields.pop("loras")]
        request = GenerationRequest(**fields, loras=tuple(spec for spec, _ in resolved))
        think = ThinkOptions(**payload["think"]) if payload["think"] else None
        edit = EditInput.from_payload(payload["edit"]) if payload.get("edit") else None
        return cls(request, think, payload["critic"], tuple(name for _, name in resolved), edit)

    def batch_key(self) -> str:
        if self.think or self.edit:
            return f"{self.kind}:{uuid.uuid4().hex}"  # thinking jobs and edits run alone
        return repr(batch_key(self.request))

    # -- the cache's form ------------------------------------------------------------------
    def image_keys(self, model_identity: str, loras: LoraFolder, settings: dict) -> list[str]:
        """One content address per image: the normalised request with that image's seed, the
        LoRA files' contents and the server settings that change the bytes."""
        request = dataclasses.asdict(self.request)
        for name in ("n", "seed", "loras"):
            request.pop(name)
        identity = {
            "request": request,
            "loras": [[loras.content_hash(spec.path), spec.scale] for spec in self.request.loras],
            "think": dataclasses.asdict(self.think) if self.think else None,
            "critic": self.critic if self.think else None,
            "settings": settings,
            **({"edit": self.edit.identity()} if self.edit else {}),
        }
        return [cache_key(model_identity, {**identity, "seed": self.request.seed + i})
                for i in range(self.request.n)]


def _http_fields(cls: type) -> list[str]:
    """The vocabulary parameters of ``cls`` that the HTTP body carries under their own name."""
    return [name for name, (_, spec) in params(cls).items() if spec.http]


_PATH = re.compile(r"(?<![\w.:/])(?!/v1/)(?:/[^\s'\"/:,;()]+)*/([^\s'\"/:,;()]+)")  # API routes stay


def short(text: object, limit: int = 40) -> str:
    """At most ``limit`` characters of a client's value, for an error message that names it
    (a 15 MB model name is not echoed back)."""
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def redact(message: str) -> str:
    """``message`` without the server's folders: every absolute path shrinks to its last part
    (the API's own routes, /v1/…, stay whole)."""
    return _PATH.sub(lambda m: m.group(1), message)
