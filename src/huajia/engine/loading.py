"""Finding and loading a text-to-image pipeline: 'embedded', a local diffusers folder or a hub id.

Every way this can go wrong (missing folder, a folder that is not a pipeline, a hub that cannot
be reached) is a one-line HuajiaError saying what to pass instead.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from huajia.errors import HuajiaError

EMBEDDED = "embedded"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def embedded_path() -> Path:
    return Path(str(resources.files("huajia"))) / "assets" / "embedded"


@dataclass(frozen=True)
class ModelSource:
    name: str  # what the user asked for
    location: str  # a folder, or a hub id
    is_local: bool
    huajia_trained: bool  # trained on the shapes world (knows only its vocabulary)


def resolve_model(model: str) -> ModelSource:
    if model == EMBEDDED:
        path = embedded_path()
        if not (path / "model_index.json").is_file():
            raise HuajiaError("the embedded model is not installed in this copy of huajia; "
                              "train one with 'huajia train base --out DIR' and pass --model DIR/model")
        return ModelSource(model, str(path), True, True)
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "model_index.json").is_file():
            raise HuajiaError(f"'{model}' is not a diffusers pipeline folder (no model_index.json); "
                              "pass a folder saved with save_pretrained, a hub id or 'embedded'")
        return ModelSource(model, str(path), True, (path / "training.json").is_file())
    if _HUB_ID.match(model):
        return ModelSource(model, model, False, False)
    raise HuajiaError(f"no model at '{model}': not a folder, not a hub id (owner/name) and not "
                      "'embedded'")


def pick_device(device: str | None = None) -> tuple[torch.device, torch.dtype]:
    if device:
        chosen = torch.device(device)
    else:
        chosen = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return chosen, torch.float16 if chosen.type == "cuda" else torch.float32


def dtype_kwargs(dtype: torch.dtype) -> dict:
    """``from_pretrained``'s dtype argument: recent diffusers renamed ``torch_dtype`` to ``dtype``
    (the old name warns); older releases only know ``torch_dtype``."""
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401 - the rename
    except ImportError:
        return {"torch_dtype": dtype}
    return {"dtype": dtype}


def load_pipeline(source: ModelSource, device: torch.device, dtype: torch.dtype):
    from diffusers import DiffusionPipeline
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    # huajia shows its own progress; the libraries' loading bars would only add noise
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    try:
        pipe = DiffusionPipeline.from_pretrained(source.location, **dtype_kwargs(dtype))
    except (OSError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if source.is_local:
            raise HuajiaError(f"cannot load the pipeline in '{source.location}': {first_line}") from error
        raise HuajiaError(f"cannot fetch '{source.location}' from the Hugging Face Hub ({first_line}); "
                          "download it where the hub is reachable and pass the local folder") from error
    if not hasattr(pipe, "unet") and not hasattr(pipe, "transformer"):
        raise HuajiaError(f"'{source.name}' is a {type(pipe).__name__}, not a text-to-image pipeline")
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def model_hash(source: ModelSource, pipe) -> str:
    """A1111-style short hash: sha256 of the denoiser's weights file, first 10 hex digits (of
    its weights themselves for a pipeline built in memory)."""
    if not source.location:
        return denoiser_hash(pipe)
    if not source.is_local:
        return hashlib.sha256(source.location.encode()).hexdigest()[:10]
    folder = Path(source.location) / ("unet" if hasattr(pipe, "unet") else "transformer")
    weights = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
    digest = hashlib.sha256()
    for path in weights:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:10]


def denoiser_hash(pipe) -> str:
    """sha256 of the denoiser's parameters in memory, first 10 hex digits."""
    denoiser = getattr(pipe, "unet", None) or pipe.transformer
    digest = hashlib.sha256()
    for name, tensor in sorted(denoiser.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:10]
