"""Finding and loading a text-to-image pipeline, and how it runs: 'embedded', a local diffusers
folder, a hub id (from the local cache when the hub cannot be reached) or a single checkpoint
file (``.safetensors``/``.ckpt`` as A1111 and ComfyUI users have them, ``.gguf``); its precision,
quantization, offloading, VAE tiling and slicing, attention backend and step cache
(``LoadOptions``, one vocabulary for ``Engine(load=...)``, the CLI and the server).

Every way this can go wrong (a missing folder, a truncated file, a layout nobody can read, a
config that would need the hub, an option this machine cannot run) is a one-line HuajiaError
saying what to pass instead. This module imports torch and diffusers only when it loads: the CLI
reads ``LoadOptions`` at import time.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huajia.errors import HuajiaError
from huajia.params import param

if TYPE_CHECKING:
    import torch

EMBEDDED = "embedded"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
SINGLE_FILE_SUFFIXES = (".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin", ".gguf")
DTYPES = ("auto", "bf16", "fp16", "fp32")
CPU_ATTENTION = ("native", "_native_math")  # the backends that run without a GPU
# diffusers' name of a single file's layout (``infer_diffusers_model_type``) -> huajia's family
_FILE_FAMILIES = {"v1": "sd", "v2": "sd", "xl_base": "sdxl", "playground-v2-5": "sdxl",
                  "sd3": "sd3", "sd35_large": "sd3", "sd35_medium": "sd3", "flux-dev": "flux",
                  "flux-schnell": "flux", "chroma": "chroma", "lumina2": "lumina2",
                  "sana": "sana", "hidream": "hidream", "z-image-turbo": "zimage"}
_WHOLE_PIPELINE = ("first_stage_model.",)  # an ldm/sgm VAE inside: the file is a whole model


def embedded_path() -> Path:
    return Path(str(resources.files("huajia"))) / "assets" / "embedded"


def family_param():
    """``family``: the model family, for a pipeline whose family cannot be told (one
    declaration for the server's config and the training recipes; ``check_family``)."""
    return param(None, help="The model family (sd, sdxl, kolors, sd3, flux, chroma, "
                            "qwenimage, zimage, sana, pixart_sigma, lumina2, hidream), for a "
                            "pipeline whose family cannot be told (default: told from the "
                            "pipeline; huajia models PATH shows it).")


def check_family(name: str | None) -> None:
    """A family name no family has is one line now, not when the model loads."""
    if name is not None:
        from huajia.engine.families import by_name

        by_name(name)


@dataclass(frozen=True)
class LoadOptions:
    """How a model is loaded and run: precision, memory and speed. Options a machine cannot
    honour (offloading or NF4 without a GPU, a missing library) are refused in one line."""

    dtype: str = param("auto", choices=DTYPES, http=False,
                       help="Precision of the weights and the painting (auto: fp16 on a GPU, "
                            "fp32 on the CPU; bf16 runs on both).")
    offload: str = param("none", choices=("none", "model", "sequential"), http=False,
                         help="Keep the weights in CPU memory and move each model (model) or "
                              "each layer (sequential, slowest, least memory) to the GPU as it "
                              "runs; needs a GPU.")
    vae_tiling: str = param("auto", choices=("auto", "on", "off"), http=False,
                            help="Decode and encode pictures larger than the VAE's own size in "
                                 "overlapping tiles, in far less memory (auto: on a GPU).")
    vae_slicing: bool = param(False, http=False,
                              help="Decode a batch one picture at a time (less memory).")
    quantize: str = param("none", choices=("none", "int8", "nf4"), http=False,
                          help="Quantize the denoiser's and text encoders' weights: int8 "
                               "(torchao, weight-only; CPU or GPU; pip install 'huajia[quant]') "
                               "or nf4 (bitsandbytes; GPU). A .gguf file comes quantized.")
    attention: str | None = param(None, http=False,
                                  help="diffusers' attention backend (e.g. native, flash, sage, "
                                       "xformers) on denoisers that dispatch by backend "
                                       "(default: diffusers' own).")
    step_cache: float = param(0.0, low=0.0, high=1.0, http=False,
                              help="First-Block Cache: reuse the rest of the denoiser's last "
                                   "output while its first block's output changed less than "
                                   "this (0: off; 0.05 to 0.2 is usual; faster, slightly "
                                   "different pictures).")
    model_config: str | None = param(None, http=False,
                                     help="For a single checkpoint file: a diffusers folder (or "
                                          "cached hub id) of the same family, for the configs, "
                                          "tokenizers and parts the file lacks.")

    def __post_init__(self) -> None:
        from huajia.params import check

        check(self)


@dataclass(frozen=True)
class ModelSource:
    name: str  # what the user asked for
    location: str  # a folder, a hub id or a file
    is_local: bool
    huajia_trained: bool  # trained on the shapes world (knows only its vocabulary)
    single_file: bool = False  # one checkpoint file (.safetensors, .ckpt, .gguf)


def resolve_model(model: str) -> ModelSource:
    if model == EMBEDDED:
        path = embedded_path()
        if not (path / "model_index.json").is_file():
            raise HuajiaError("the embedded model is not installed in this copy of huajia; "
                              "train one with 'huajia train base --out DIR' and pass --model DIR/model")
        return ModelSource(model, str(path), True, True)
    path = Path(model).expanduser()
    if path.is_file():
        if path.suffix.lower() not in SINGLE_FILE_SUFFIXES:
            raise HuajiaError(f"'{model}' is not a checkpoint file huajia reads; pass a "
                              f"{', '.join(SINGLE_FILE_SUFFIXES)} file, a diffusers folder, a "
                              "hub id or 'embedded'")
        return ModelSource(model, str(path), True, False, single_file=True)
    if path.exists():
        if not (path / "model_index.json").is_file():
            raise HuajiaError(f"'{model}' is not a diffusers pipeline folder (no model_index.json); "
                              "pass a folder saved with save_pretrained, a checkpoint file, a hub "
                              "id or 'embedded'")
        return ModelSource(model, str(path), True, (path / "training.json").is_file())
    if _HUB_ID.match(model):
        return ModelSource(model, model, False, False)
    raise HuajiaError(f"no model at '{model}': not a folder, not a file, not a hub id "
                      "(owner/name) and not 'embedded'")


def pick_device(device: str | None = None, dtype: str = "auto") -> tuple[torch.device, torch.dtype]:
    """The device (the GPU when there is one) and the precision ``dtype`` names there."""
    import torch

    if device:
        chosen = torch.device(device)
    else:
        chosen = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dtype == "auto":
        return chosen, torch.float16 if chosen.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise HuajiaError(f"unknown dtype '{dtype}'; known: {', '.join(DTYPES)}")
    return chosen, {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]


def dtype_kwargs(dtype: torch.dtype) -> dict:
    """``from_pretrained``'s dtype argument: recent diffusers renamed ``torch_dtype`` to ``dtype``
    (the old name warns); older releases only know ``torch_dtype``."""
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401 - the rename
    except ImportError:
        return {"torch_dtype": dtype}
    return {"dtype": dtype}


def check_options(options: LoadOptions, device: torch.device) -> None:
    """Refuse, before anything loads, what this machine or this install cannot do."""
    gpu = device.type != "cpu"
    if options.offload != "none" and not gpu:
        raise HuajiaError(f"offload '{options.offload}' moves weights between CPU memory and a "
                          "GPU, and this machine paints on the CPU; use offload none")
    if options.quantize == "nf4":
        if device.type != "cuda":
            raise HuajiaError("quantize nf4 (bitsandbytes) needs a CUDA GPU; on the CPU use "
                              "quantize int8 (torchao) or none")
        _require("bitsandbytes", "quantize nf4", "pip install bitsandbytes")
    if options.quantize == "int8":
        _require("torchao", "quantize int8", "pip install 'huajia[quant]'")


def _require(module: str, what: str, how: str) -> None:
    if find_spec(module) is None:
        raise HuajiaError(f"{what} needs the '{module}' package, which is not installed; {how}")


def load_pipeline(source: ModelSource, device: torch.device, dtype: torch.dtype,
                  options: LoadOptions | None = None, family: str | None = None):
    """The pipeline of ``source`` in ``dtype``, quantized and placed as ``options`` say
    (``family`` decides a single file's pipeline where its keys do not)."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    options = options or LoadOptions()
    check_options(options, device)
    # huajia shows its own progress; the libraries' loading bars would only add noise
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    if source.single_file:
        pipe = load_single_file(source, dtype, options, family)
    else:
        pipe = _from_pretrained(source, dtype, options)
    if not hasattr(pipe, "unet") and not hasattr(pipe, "transformer"):
        raise HuajiaError(f"'{source.name}' is a {type(pipe).__name__}, not a text-to-image pipeline")
    pipe.set_progress_bar_config(disable=True)
    if options.quantize == "int8":
        quantize_int8(pipe)
    return place(pipe, device, options.offload)


def _from_pretrained(source: ModelSource, dtype: torch.dtype, options: LoadOptions):
    from diffusers import DiffusionPipeline

    try:
        extra = {"quantization_config": _nf4_config(source.location, dtype)} \
            if options.quantize == "nf4" else {}
        return DiffusionPipeline.from_pretrained(source.location, **dtype_kwargs(dtype), **extra)
    except (OSError, ValueError) as error:
        if source.is_local:
            raise HuajiaError(f"cannot load the pipeline in '{source.location}': "
                              f"{_first_line(error)}") from error
        raise HuajiaError(f"cannot fetch '{source.location}' from the Hugging Face Hub "
                          f"({_first_line(error)}); download it where the hub is reachable and "
                          "pass the local folder") from error


def _first_line(error: BaseException) -> str:
    """An error's first line (its first sentence, when that line runs on)."""
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return line.split(". ")[0].rstrip(".") if len(line) > 160 else line


# ---- quantization and placement ----------------------------------------------------------------

def quantized_parts(pipe) -> list[str]:
    """The components quantization applies to: the denoiser and the text encoders."""
    return [name for name, part in pipe.components.items()
            if part is not None and (name in ("unet", "transformer") or
                                     name.startswith("text_encoder"))]


def quantize_int8(pipe) -> None:
    """torchao's weight-only int8 on the denoiser and text encoders, in place (linear layers
    keep int8 weights and compute in the model's dtype)."""
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    for name in quantized_parts(pipe):
        part = getattr(pipe, name)
        if hasattr(part, "parameters"):
            quantize_(part, Int8WeightOnlyConfig())


def _nf4_config(location: str, dtype: torch.dtype):
    """diffusers' pipeline-wide bitsandbytes NF4 config for the denoiser and text encoders."""
    from diffusers import DiffusionPipeline
    from diffusers.quantizers import PipelineQuantizationConfig

    index = DiffusionPipeline.load_config(location)
    parts = [name for name in index if name in ("unet", "transformer") or
             name.startswith("text_encoder")]
    return PipelineQuantizationConfig(
        quant_backend="bitsandbytes_4bit", components_to_quantize=parts,
        quant_kwargs={"load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
                      "bnb_4bit_compute_dtype": dtype})


def place(pipe, device: torch.device, offload: str):
    """Move ``pipe`` to ``device``, or leave its weights in CPU memory with diffusers' model
    or sequential offloading onto it."""
    if offload == "model":
        pipe.enable_model_cpu_offload(device=device)
        return pipe
    if offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
        return pipe
    return pipe.to(device)


# ---- single checkpoint files ---------------------------------------------------------------------

def load_single_file(source: ModelSource, dtype: torch.dtype, options: LoadOptions,
                     family: str | None = None):
    """A pipeline from one checkpoint file. A whole model (an ldm/sgm layout with its VAE and
    text encoders: SD 1.x/2.x, SDXL, SD3) goes through its pipeline's ``from_single_file``; a
    denoiser alone (Flux, Chroma, Z-Image, Sana, Lumina 2, HiDream, Qwen-Image files, and every
    ``.gguf``) is read into the denoiser class of ``options.model_config`` (or of the family's
    usual hub repo, from the local cache) and the rest comes from there."""
    path = Path(source.location)
    gguf = path.suffix.lower() == ".gguf"
    if options.quantize == "nf4" or gguf and options.quantize != "none":
        why = "it is quantized already" if gguf else "bitsandbytes quantizes diffusers folders " \
            "and hub ids as they load"
        raise HuajiaError(f"quantize {options.quantize} does not apply to '{path.name}' ({why}); "
                          f"use quantize {'none' if gguf else 'int8'}")
    keys = read_keys(path)
    whole = not gguf and any(k.startswith(_WHOLE_PIPELINE) for k in keys)
    name = family or (None if options.model_config else _file_family(path, keys))
    if whole:
        return _whole_file(path, keys, dtype, options, name)
    return _denoiser_file(path, keys, dtype, options, name, gguf)


def read_keys(path: Path) -> dict[str, Any]:
    """The tensors' names and shapes of a checkpoint file (shape-only tensors where the format
    allows), without its weights; one line if it cannot be read."""
    import torch

    suffix = path.suffix.lower()
    try:
        if suffix in (".safetensors", ".sft"):
            from safetensors import safe_open

            with safe_open(str(path), "pt") as handle:
                return {k: torch.empty(handle.get_slice(k).get_shape(), device="meta")
                        for k in handle.keys()}
        if suffix == ".gguf":
            _require("gguf", f"reading '{path.name}'", "pip install 'huajia[quant]' (or gguf)")
            from gguf import GGUFReader

            return {t.name: torch.empty([int(n) for n in reversed(t.shape)], device="meta")
                    for t in GGUFReader(str(path)).tensors}
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as error:  # a file in torch's legacy (pre-zip) format
            if "mmap" not in str(error):
                raise
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except HuajiaError:
        raise
    except Exception as error:  # each reader has its own errors; all mean the same here
        if "Weights only load failed" in str(error):
            raise HuajiaError(f"'{path.name}' holds more than weights (pickled objects that "
                              "would run code, which huajia does not load); convert it to "
                              ".safetensors where you trust it") from None
        raise HuajiaError(f"cannot read '{path.name}' ({_first_line(error)}); the file is "
                          "truncated or not a checkpoint: download it again") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not state:
        raise HuajiaError(f"'{path.name}' holds no weights; pass a model checkpoint")
    return state


def _file_family(path: Path, keys: dict) -> str:
    """The family a checkpoint's keys say it is (diffusers' own recognition), or one line."""
    return _FILE_FAMILIES[_file_kind(path, keys)]


def _file_kind(path: Path, keys: dict) -> str:
    """diffusers' name of a checkpoint's layout, if it is a model huajia paints with."""
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    try:
        kind = infer_diffusers_model_type(keys)
    except Exception:  # noqa: BLE001 - a layout the recogniser trips on is one it does not know
        kind = None
    if kind == "v1" and not any(k.startswith("model.diffusion_model.") for k in keys):
        kind = None  # diffusers' answer when nothing matched
    if kind in _FILE_FAMILIES:
        return kind
    what = f"a '{kind}' checkpoint, not a text-to-image model huajia paints with" if kind else \
        "its layout is not one diffusers knows"
    raise HuajiaError(f"cannot tell which model '{path.name}' is ({what}); pass --family and "
                      "--model-config with a diffusers folder of its family")


def _pipeline_class(name: str):
    import diffusers

    from huajia.engine import families

    return getattr(diffusers, families.by_name(name).pipelines[0])


def _whole_file(path: Path, keys: dict, dtype: torch.dtype, options: LoadOptions,
                family: str | None):
    from diffusers import DiffusionPipeline
    from diffusers.loaders import FromSingleFileMixin

    if options.model_config:
        index = _config_index(options.model_config)
        import diffusers

        cls = getattr(diffusers, index["_class_name"], None) or DiffusionPipeline
    else:
        cls = _pipeline_class(family or _file_family(path, keys))
    if not issubclass(cls, FromSingleFileMixin):
        raise HuajiaError(f"diffusers reads no single-file {cls.__name__}; convert '{path.name}' "
                          "to a diffusers folder and pass that")
    try:
        return cls.from_single_file(str(path), config=options.model_config, torch_dtype=dtype)
    except Exception as error:  # noqa: BLE001 - hub, config and conversion errors alike
        raise _single_file_error(path, keys, options, error) from None


def _denoiser_file(path: Path, keys: dict, dtype: torch.dtype, options: LoadOptions,
                   family: str | None, gguf: bool):
    import diffusers
    from diffusers import DiffusionPipeline

    config = options.model_config
    if config:
        index = _config_index(config)
    else:  # the family's usual repo, from the local cache when the hub cannot be reached
        config = _default_repo(path, keys, family)
        try:
            index = dict(DiffusionPipeline.load_config(config))
        except (OSError, ValueError):
            raise _needs_hub(path, config) from None
    name = "transformer" if "transformer" in index else "unet"
    denoiser_cls = getattr(diffusers, index.get(name, [None, ""])[1], None)
    if denoiser_cls is None or not hasattr(denoiser_cls, "from_single_file"):
        raise HuajiaError(f"diffusers reads no single-file denoiser of the {index['_class_name']} "
                          f"in '{config}'; convert '{path.name}' to a diffusers folder")
    extra = {}
    if gguf:
        _require("gguf", f"loading '{path.name}'", "pip install 'huajia[quant]' (or gguf)")
        extra["quantization_config"] = diffusers.GGUFQuantizationConfig(compute_dtype=dtype)
    try:
        denoiser = denoiser_cls.from_single_file(str(path), config=config, subfolder=name,
                                                 torch_dtype=dtype, **extra)
        return DiffusionPipeline.from_pretrained(config, **{name: denoiser},
                                                 **dtype_kwargs(dtype))
    except Exception as error:  # noqa: BLE001 - hub, config and conversion errors alike
        raise _single_file_error(path, keys, options, error) from None


def _config_index(config: str) -> dict:
    """``model_index.json`` of a diffusers folder or a cached hub id, or one line."""
    from diffusers import DiffusionPipeline

    try:
        return dict(DiffusionPipeline.load_config(config))
    except (OSError, ValueError) as error:
        raise HuajiaError(f"--model-config '{config}' is not a diffusers pipeline folder or a "
                          f"cached hub id ({_first_line(error)}); pass a folder saved with "
                          "save_pretrained") from None


def _default_repo(path: Path, keys: dict, family: str | None) -> str:
    """The hub repo diffusers takes a file's missing parts from (by its family, or its keys)."""
    from diffusers.loaders.single_file_utils import DIFFUSERS_DEFAULT_PIPELINE_PATHS

    kind = next((k for k, f in _FILE_FAMILIES.items() if f == family), None) if family else \
        _file_kind(path, keys)
    repo = DIFFUSERS_DEFAULT_PIPELINE_PATHS.get(kind, {}).get("pretrained_model_name_or_path")
    if not repo:
        raise HuajiaError(f"'{path.name}' holds a denoiser alone; pass --model-config with a "
                          "diffusers folder of its family for the rest")
    return repo


def _needs_hub(path: Path, repo: str | None) -> HuajiaError:
    where = f" ('{repo}')" if repo else ""
    return HuajiaError(f"'{path.name}' lacks the configs and tokenizers of its model; diffusers "
                       f"takes them from the Hugging Face Hub{where}, which cannot be reached "
                       "and is not in the local cache: pass --model-config with a diffusers "
                       "folder of the same family")


def _single_file_error(path: Path, keys: dict, options: LoadOptions,
                       error: Exception) -> HuajiaError:
    if isinstance(error, OSError) and not options.model_config:  # a config it went to fetch
        try:
            from diffusers.loaders.single_file_utils import fetch_diffusers_config

            repo = fetch_diffusers_config(keys)["pretrained_model_name_or_path"]
        except Exception:  # noqa: BLE001
            repo = None
        return _needs_hub(path, repo)
    return HuajiaError(f"cannot load '{path.name}' ({_first_line(error)}); check that "
                       "--model-config is a folder of the same family and size")


# ---- what runs with the pipeline -----------------------------------------------------------------

def check_built(options: LoadOptions) -> None:
    """``Engine(pipe=...)`` takes the pipeline as it was built: what is chosen while loading
    cannot be asked of it."""
    chosen = [f"{name} {value}" for name, value, default in (
        ("dtype", options.dtype, "auto"), ("quantize", options.quantize, "none"),
        ("offload", options.offload, "none"), ("model_config", options.model_config, None))
        if value != default]
    if chosen:
        raise HuajiaError(f"{', '.join(chosen)}: chosen when huajia loads a model, not for a "
                          "pipeline passed in; load it so (e.g. pipe.to(dtype), "
                          "pipe.enable_model_cpu_offload()) or pass the model's name")


def quantization(source: ModelSource, options: LoadOptions) -> str:
    """How the denoiser's weights are stored: none, int8, nf4 or gguf (a .gguf file)."""
    if source.single_file and source.location.lower().endswith(".gguf"):
        return "gguf"
    return options.quantize


def configure(pipe, family, options: LoadOptions, device: torch.device,
              source: ModelSource) -> dict[str, Any]:
    """VAE tiling and slicing, the attention backend and the step cache on a loaded pipeline;
    returns how the model runs (``Engine.load_record``)."""
    record: dict[str, Any] = {"dtype": options.dtype, "offload": options.offload,
                              "quantize": quantization(source, options)}
    vae = getattr(pipe, "vae", None)
    tiling = options.vae_tiling == "on" or options.vae_tiling == "auto" and device.type != "cpu"
    record["vae_tiling"] = _vae_switch(vae, "tiling", tiling, options.vae_tiling == "on", family)
    record["vae_slicing"] = _vae_switch(vae, "slicing", options.vae_slicing,
                                        options.vae_slicing, family)
    denoiser = family.denoiser(pipe)
    if options.attention:
        record["attention"] = set_attention(denoiser, options.attention, device, family)
    if options.step_cache > 0:
        from huajia.engine.step_cache import enable_step_cache

        enable_step_cache(denoiser, options.step_cache, family.label)
        record["step_cache"] = options.step_cache
    return record


def _vae_switch(vae, what: str, on: bool, asked: bool, family) -> bool:
    method = getattr(vae, f"enable_{what}", None)
    if not on:
        return False
    if method is None:
        if asked:
            raise HuajiaError(f"the VAE of this {family.label} model ({type(vae).__name__}) has "
                              f"no {what}; use vae_{what} off")
        return False
    method()
    return True


def attention_backends() -> tuple[str, ...]:
    from diffusers.models.attention_dispatch import AttentionBackendName

    return tuple(b.value for b in AttentionBackendName)


def set_attention(denoiser, name: str, device: torch.device, family) -> str:
    """diffusers' attention backend ``name`` on ``denoiser``, or one line saying why not."""
    known = attention_backends()
    name = name.lower()
    if name not in known:
        public = [b for b in known if not b.startswith("_")]
        raise HuajiaError(f"unknown attention backend '{name}'; known: {', '.join(public)}")
    dispatches = any(hasattr(getattr(m, "processor", None), "_attention_backend")
                     for m in denoiser.modules())
    if not dispatches:  # its processors call torch's scaled_dot_product_attention themselves
        if name == "native":
            return name
        raise HuajiaError(f"the {family.label} denoiser ({type(denoiser).__name__}) does not "
                          f"switch attention backends; use attention native or leave it unset")
    if device.type == "cpu" and name not in CPU_ATTENTION:
        raise HuajiaError(f"attention backend '{name}' needs a GPU; on the CPU use "
                          f"{' or '.join(CPU_ATTENTION)}")
    try:
        denoiser.set_attention_backend(name)
    except (RuntimeError, ValueError, ImportError, OSError) as error:
        raise HuajiaError(f"attention backend '{name}' is not available here "
                          f"({_first_line(error)}); use attention native") from None
    return name


def infotext_fields(record: dict[str, Any]) -> dict[str, Any]:
    """What the infotext records of how the model ran: only what changes its pixels and was
    not the default (precision chosen, quantization, attention backend, step cache)."""
    fields: dict[str, Any] = {}
    if record.get("dtype", "auto") != "auto":
        fields["Precision"] = record["dtype"]
    if record.get("quantize", "none") != "none":
        fields["Quantization"] = record["quantize"]
    if record.get("attention"):
        fields["Attention"] = record["attention"]
    if record.get("step_cache"):
        fields["First block cache"] = record["step_cache"]
    if record.get("vae_tiling"):
        fields["VAE tiling"] = "on"
    return fields


# ---- identity ----------------------------------------------------------------------------------

def model_hash(source: ModelSource, pipe) -> str:
    """A1111-style short hash: sha256 of the checkpoint file (A1111's own hash) or of the
    denoiser's weights files, first 10 hex digits (of its weights themselves for a pipeline
    built in memory)."""
    if not source.location:
        return denoiser_hash(pipe)
    if not source.is_local:
        return hashlib.sha256(source.location.encode()).hexdigest()[:10]
    if source.single_file:
        weights = [Path(source.location)]
    else:
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
    import torch

    denoiser = getattr(pipe, "unet", None) or pipe.transformer
    digest = hashlib.sha256()
    for name, tensor in sorted(denoiser.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:10]
