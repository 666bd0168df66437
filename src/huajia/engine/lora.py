"""Loading LoRAs onto a pipeline by path and scale, with the new words a pivotally tuned LoRA
brings (its ``*_emb.safetensors`` textual-inversion embeddings).

The files huajia reads: diffusers' own (``pytorch_lora_weights.safetensors``, what
``save_lora_weights`` and huajia's trainer write), kohya/A1111 (``lora_unet_…``/``lora_te_…``
with ``.alpha``), peft's (a bare ``get_peft_model_state_dict`` of the denoiser, or
``PeftModel.save_pretrained``'s folder with its ``adapter_config.json``) and DiffSynth-Studio's
Kolors/SDXL checkpoints (its trainer's ``.ckpt``: peft keys on its own UNet's ``blocks.N``
names, no alpha stored). ``read_lora`` reads one (a one-line ``HuajiaError`` for a file that is
not a LoRA); the model's family (``engine/families``) loads it, which says what a family
changes: diffusers' ``load_lora_weights`` (its per-family conversions) or peft injection into
the denoiser, which modules, text-encoder LoRAs or not. The helpers below are what families
use: mapping a file's layers onto a model's modules, injecting them, activating adapters.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import warnings
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from huajia.errors import HuajiaError

WEIGHT_NAME = "pytorch_lora_weights.safetensors"
PEFT_WEIGHT_NAMES = ("adapter_model.safetensors", "adapter_model.bin")  # PeftModel's folder
PEFT_CONFIG = "adapter_config.json"
TORCH_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")  # pickled state dicts (read weights-only)
# DiffSynth-Studio's checkpoints do not store their alpha: its trainer's --lora_alpha default
# (the seed's recipe trains at 4 too, at rank 16). A LoRA trained at alpha A paints as meant at
# scale A / 4 (the seed loads its own back at alpha 2: scale 0.5).
DIFFSYNTH_ALPHA = 4.0
COMPONENTS = ("unet", "transformer", "text_encoder", "text_encoder_2", "text_encoder_3")
KOHYA_PREFIXES = ("lora_unet_", "lora_transformer_", "lora_te_", "lora_te1_", "lora_te2_",
                  "lora_te3_")

# a file's tensor name → (the layer it adapts, what it is): peft's lora_A/lora_B (with or
# without an adapter name), kohya's lora_down/lora_up, diffusers' old lora.down/lora.up, alpha
_PART = re.compile(r"^(?P<module>.+?)\.(?:(?P<peft>lora_[AB])(?:\.[^.]+)?\.weight|"
                   r"(?P<kohya>lora_(?:down|up))\.weight|lora\.(?P<old>down|up)\.weight|"
                   r"(?P<alpha>alpha))$")
_DOWN = {"lora_A", "lora_down", "down"}


@dataclass
class LoraFile:
    """A LoRA file as read: its tensors' names, its header and peft's config beside it."""

    path: str  # as the user named it (a file or a folder)
    weights: Path  # the file that holds the weights
    keys: tuple[str, ...]
    safetensors: bool = True
    metadata: dict = field(default_factory=dict)  # a safetensors header's metadata
    config: dict = field(default_factory=dict)  # peft's adapter_config.json, where there is one
    loaded: dict | None = field(default=None, repr=False)

    def tensors(self) -> dict:
        if self.loaded is None:
            from safetensors.torch import load_file

            self.loaded = load_file(str(self.weights))
        return self.loaded

    @property
    def format(self) -> str:
        """'kohya', 'diffsynth', 'diffusers' (keys named by pipeline component), 'peft' (bare
        keys of one model) or 'other' (left to diffusers' conversions)."""
        keys = self.keys
        if any(key.startswith(KOHYA_PREFIXES) for key in keys):
            return "kohya"
        peft = [key for key in keys if ".lora_A" in key or ".lora_B" in key]
        if any(re.match(r"blocks\.\d+\.", key) for key in peft):
            return "diffsynth"
        if any(key.split(".", 1)[0] in COMPONENTS for key in keys):
            return "diffusers"
        return "peft" if peft else "other"


def _one_line(error: BaseException, limit: int = 240) -> str:
    """An error's message on one line (the first size mismatch of a state dict's many)."""
    text = str(error)
    mismatch = re.search(r"size mismatch for (\S+): copying a param with shape (\S+ ?\S*) from "
                         r"checkpoint, the shape in current model is (\S+ ?\S*?)\.?$", text, re.M)
    if mismatch:
        layer = re.sub(r"\.lora_[AB](\.[^.]+)?\.weight$", "", mismatch[1])
        shapes = [re.sub(r"torch\.Size\((.*)\)", r"\1", shape) for shape in mismatch.groups()[1:]]
        return (f"its LoRA on {layer} is {shapes[0]} where this model's would be {shapes[1]} "
                "(a LoRA for another model)")
    text = " ".join(text.split()) or type(error).__name__
    return text if len(text) <= limit else text[:limit - 1] + "…"


def weights_file(path: str | Path) -> Path:
    """The file that holds a LoRA's weights: the file itself, or in a folder diffusers'
    ``pytorch_lora_weights.safetensors`` or peft's ``adapter_model.safetensors``."""
    path = Path(path)
    if not path.is_dir():
        return path
    for name in (WEIGHT_NAME, *PEFT_WEIGHT_NAMES):
        if (path / name).exists():
            return path / name
    raise HuajiaError(f"LoRA folder '{path}' holds neither {WEIGHT_NAME} (diffusers) nor "
                      f"{PEFT_WEIGHT_NAMES[0]} (peft); pass the LoRA's file itself")


def read_lora(path: str | Path) -> LoraFile:
    """The LoRA at ``path`` (a file, or a diffusers or peft folder), or a one-line
    ``HuajiaError`` naming it and why it is not one. Safetensors files are read lazily (their
    tensors when a conversion needs them); pickled checkpoints (.ckpt, .pt, .bin) are read
    weights-only (no code runs)."""
    given = str(path)
    if not Path(path).exists():
        raise _missing(given)
    weights = weights_file(path)
    config = {}
    if weights.name in PEFT_WEIGHT_NAMES and (weights.parent / PEFT_CONFIG).exists():
        try:
            config = json.loads((weights.parent / PEFT_CONFIG).read_text())
        except (OSError, ValueError) as error:
            raise HuajiaError(f"cannot read LoRA '{given}': its {PEFT_CONFIG} is not JSON "
                              f"({_one_line(error)})") from None
    try:
        from safetensors import safe_open

        with safe_open(str(weights), "pt") as handle:
            lora = LoraFile(given, weights, tuple(handle.keys()), True,
                            dict(handle.metadata() or {}), config)
    except Exception as safetensors_error:  # noqa: BLE001 - safetensors' own error types
        if weights.suffix.lower() not in TORCH_SUFFIXES:
            raise HuajiaError(f"cannot read LoRA '{given}': not a safetensors file "
                              f"({_one_line(safetensors_error, 120)})") from None
        tensors = _torch_tensors(given, weights)
        lora = LoraFile(given, weights, tuple(tensors), False, {}, config, tensors)
    if not lora.keys:
        raise HuajiaError(f"LoRA '{given}' holds no tensors")
    if any("hada_w" in key or "lokr_w" in key for key in lora.keys):
        raise HuajiaError(f"LoRA '{given}' is a LyCORIS LoHa/LoKr, which huajia does not "
                          "load; use a LoRA (lora_down/lora_up or lora_A/lora_B weights)")
    if not any("lora" in key.lower() for key in lora.keys):
        raise HuajiaError(f"LoRA '{given}' holds no LoRA weights (its {len(lora.keys)} tensors "
                          f"are named like '{lora.keys[0]}'); is it a model checkpoint?")
    return lora


def _torch_tensors(given: str, weights: Path) -> dict:
    """A pickled state dict's tensors (a Lightning checkpoint's own ``state_dict`` too)."""
    import torch

    try:
        loaded = torch.load(str(weights), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - a corrupt pickle raises any type at all
        raise HuajiaError(f"cannot read LoRA '{given}': neither a safetensors file nor a "
                          f"PyTorch checkpoint ({type(error).__name__}: "
                          f"{_one_line(error, 120)})") from None
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict):
        raise HuajiaError(f"cannot read LoRA '{given}': it holds a {type(loaded).__name__}, "
                          "not a state dict")
    return {str(k): v for k, v in loaded.items() if isinstance(v, torch.Tensor)}


# -- a file's layers on a model's modules ----------------------------------------------------
@dataclass
class Fit:
    """A file's layers placed on one model: {module name: (down, up)} with the alpha folded
    into ``up`` (so each loads at alpha = rank), and the file's layers that fit nowhere."""

    layers: dict = field(default_factory=dict)
    unplaced: list = field(default_factory=list)

    def state_dict(self, prefix: str) -> dict:
        """diffusers' format: ``{prefix}.{module}.lora_A.weight`` / ``lora_B``."""
        out = {}
        for module, (down, up) in self.layers.items():
            out[f"{prefix}.{module}.lora_A.weight"] = down
            out[f"{prefix}.{module}.lora_B.weight"] = up
        return out


def _lora_layers(model) -> dict:
    """{name: the nn.Linear / nn.Conv2d a LoRA can adapt} (a peft-wrapped one by its own name)."""
    import torch
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers, inside = {}, ()
    for name, module in model.named_modules():
        if inside and name.startswith(inside):
            continue
        if isinstance(module, BaseTunerLayer):
            layers[name], inside = module.get_base_layer(), name + "."
        elif isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            layers[name] = module
    return layers


def place_layers(lora: LoraFile, model, *, prefixes: tuple[str, ...] = (), rename=None,
                 alpha: float | None = None) -> Fit:
    """Put ``lora``'s layers on ``model``'s modules: peft, kohya (underscored names) and
    diffusers-old names; ``prefixes`` are stripped first (e.g. ``transformer.``), ``rename``
    maps another tool's module names (DiffSynth's) to the model's. The alpha is the file's
    ``.alpha`` tensor, else peft's config, else ``alpha``, else the rank. Raises a one-line
    ``HuajiaError`` where a layer is placed but its shape does not fit."""
    import torch

    parts: dict[str, dict] = {}
    for key in lora.keys:
        match = _PART.match(key)
        if not match:
            continue
        kind = match["peft"] or match["kohya"] or match["old"] or "alpha"
        part = "alpha" if kind == "alpha" else "down" if kind in _DOWN else "up"
        parts.setdefault(match["module"], {})[part] = key
    layers = _lora_layers(model)
    underscored = {name.replace(".", "_"): name for name in layers}
    config_alpha = lora.config.get("lora_alpha")
    tensors = lora.tensors()
    fit = Fit()
    for written, found in parts.items():
        name = _resolve(written, layers, underscored, prefixes, rename)
        if name is None or "down" not in found or "up" not in found:
            fit.unplaced.append(written)
            continue
        down, up = tensors[found["down"]], tensors[found["up"]]
        base = layers[name]
        wide = base.in_features if isinstance(base, torch.nn.Linear) else base.in_channels
        tall = base.out_features if isinstance(base, torch.nn.Linear) else base.out_channels
        if down.ndim < 2 or down.shape[1] != wide or up.shape[0] != tall or \
                up.shape[1] != down.shape[0]:
            raise HuajiaError(f"LoRA '{lora.path}' does not fit this model: its layer {written} "
                              f"maps {down.shape[1]} → {up.shape[0]} features where "
                              f"{name} maps {wide} → {tall} (a LoRA for another model)")
        rank = down.shape[0]
        scale = float(tensors[found["alpha"]]) if "alpha" in found else \
            float(config_alpha or alpha or rank)
        if isinstance(base, torch.nn.Linear):
            down, up = down.reshape(rank, wide), up.reshape(tall, rank)
        fit.layers[name] = (down, up * (scale / rank) if scale != rank else up)
    return fit


def _resolve(name: str, layers: dict, underscored: dict, prefixes, rename) -> str | None:
    for prefix in prefixes:
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    if rename is not None:
        name = rename(name)
        if name is None:
            return None
    if name in layers:
        return name
    if f"{name}.0" in layers:  # to_out, a ModuleList in diffusers, a Linear elsewhere
        return f"{name}.0"
    return underscored.get(name)


def diffsynth_unet_names(config):
    """DiffSynth-Studio's SDXL/Kolors UNet names → diffusers' ``UNet2DConditionModel`` names.

    DiffSynth's ``SDXLUNet`` holds its blocks in one list, in the order it runs them
    (``blocks.N``: resnet, attention, push, …, downsampler, …, pop, resnet, attention, …
    upsampler), its feed-forward as ``act_fn.proj``/``ff`` and ``to_out`` as one Linear; its
    ``from_diffusers`` converter numbers diffusers' blocks so. The same walk over ``config``
    (the model's own down/up block types and layers) numbers them here, so the names map for
    Kolors and SDXL as DiffSynth built them and for any UNet of that shape."""
    downs, ups = list(config.down_block_types), list(config.up_block_types)
    per = config.layers_per_block
    per = [per] * len(downs) if isinstance(per, int) else list(per)
    blocks: list[str | None] = []  # None: a push or pop, which has no weights
    for i, kind in enumerate(downs):
        for j in range(per[i]):
            blocks.append(f"down_blocks.{i}.resnets.{j}")
            if "CrossAttn" in kind:
                blocks.append(f"down_blocks.{i}.attentions.{j}")
            blocks.append(None)
        if i < len(downs) - 1:
            blocks += [f"down_blocks.{i}.downsamplers.0", None]
    blocks += ["mid_block.resnets.0", "mid_block.attentions.0", "mid_block.resnets.1"]
    for i, kind in enumerate(ups):
        for j in range(list(reversed(per))[i] + 1):
            blocks += [None, f"up_blocks.{i}.resnets.{j}"]
            if "CrossAttn" in kind:
                blocks.append(f"up_blocks.{i}.attentions.{j}")
        if i < len(ups) - 1:
            blocks.append(f"up_blocks.{i}.upsamplers.0")
    top = {"time_embedding.0": "time_embedding.linear_1",
           "time_embedding.2": "time_embedding.linear_2",
           "add_time_embedding.0": "add_embedding.linear_1",
           "add_time_embedding.2": "add_embedding.linear_2",
           "text_intermediate_proj": "encoder_hid_proj"}

    def rename(name: str) -> str | None:
        match = re.match(r"blocks\.(\d+)(\..+)$", name)
        if not match:
            return top.get(name, name)
        index = int(match[1])
        if index >= len(blocks) or blocks[index] is None:
            return None
        inner = re.sub(r"\.act_fn\.proj$", ".ff.net.0.proj", match[2])
        inner = re.sub(r"\.ff$", ".ff.net.2", inner)
        return blocks[index] + inner

    return rename


# -- adapters on models ------------------------------------------------------------------------
def inject(model, fit: Fit, name: str) -> None:
    """Add ``fit``'s layers to ``model`` as peft adapter ``name`` (for denoisers whose
    pipeline has no LoRA loader), at alpha = rank (``place_layers`` folded the alpha in)."""
    from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict

    ranks = {module: down.shape[0] for module, (down, _) in fit.layers.items()}
    rank = Counter(ranks.values()).most_common(1)[0][0]
    other = {re.escape(module): r for module, r in ranks.items() if r != rank}
    config = LoraConfig(r=rank, lora_alpha=rank, target_modules=sorted(ranks),
                        rank_pattern=other, alpha_pattern=other)
    with warnings.catch_warnings():  # "multiple adapters in the model": as meant
        warnings.simplefilter("ignore")
        inject_adapter_in_model(config, model, adapter_name=name)
    state = {}
    for module, (down, up) in fit.layers.items():
        state[f"{module}.lora_A.weight"], state[f"{module}.lora_B.weight"] = down, up
    result = set_peft_model_state_dict(model, state, adapter_name=name)
    unexpected = getattr(result, "unexpected_keys", None)
    if unexpected:
        raise HuajiaError(f"LoRA layers {', '.join(unexpected[:2])} found no place; "
                          "this is a bug in huajia's LoRA loading")


def activate(model, names, scales) -> None:
    """Make the injected adapters ``names`` the active ones at ``scales`` (none: all off)."""
    from diffusers.utils.peft_utils import set_adapter_layers, set_weights_and_activate_adapters

    if names:
        set_weights_and_activate_adapters(model, list(names), list(scales))
    set_adapter_layers(model, enabled=bool(names))


def holds_adapter(models, name: str) -> int:
    """How many modules of ``models`` carry adapter ``name``."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    return sum(1 for model in models for module in model.modules()
               if isinstance(module, BaseTunerLayer) and name in getattr(module, "lora_A", {}))


def drop_adapter(models, name: str) -> None:
    """Remove adapter ``name`` from ``models`` wherever it got to (a load that failed)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for model in models:
        for module in model.modules():
            if isinstance(module, BaseTunerLayer) and name in getattr(module, "lora_A", {}):
                with warnings.catch_warnings():  # peft activates another one: restore() fixes
                    warnings.simplefilter("ignore")
                    module.delete_adapter(name)
        config = getattr(model, "peft_config", None)
        if isinstance(config, dict):
            config.pop(name, None)


def adapter_state(models) -> list:
    """What each LoRA layer of ``models`` runs: its active adapters, their scales, on or off."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [(module, list(module.active_adapters), dict(getattr(module, "scaling", {})),
             module.disable_adapters)
            for model in models for module in model.modules()
            if isinstance(module, BaseTunerLayer)]


def restore(state: list) -> None:
    """Put ``adapter_state``'s layers back as they were (after a load that failed: loading
    makes the new adapter active, dropping it activates another)."""
    for module, active, scaling, disabled in state:
        module.set_adapter([name for name in active if name in module.lora_A])
        module.scaling.update({k: v for k, v in scaling.items() if k in module.scaling})
        module.enable_adapters(not disabled)


_NOISE = ("No LoRA keys associated to", "was unsuccessful with the following error",
          "LOAD REPORT")


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(noise in message for noise in _NOISE)


@contextmanager
def quiet_loaders():
    """diffusers', transformers' and peft's loaders without their noise about a LoRA that has
    no text-encoder part, their report of a text encoder's untouched weights, a second
    adapter, and their log of an error huajia raises itself in one line; other warnings stay."""
    noise = _DropNoise()
    handlers = [handler for name in ("diffusers", "transformers", "peft", "")
                for handler in logging.getLogger(name).handlers]
    for handler in handlers:
        handler.addFilter(noise)
    try:
        with warnings.catch_warnings():
            # peft on a second adapter ("multiple adapters": as meant), and on diffusers'
            # removing a half-loaded one (restore() puts the active set back)
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            warnings.filterwarnings("ignore", message="Adapter .* was active which is now")
            yield
    finally:
        for handler in handlers:
            handler.removeFilter(noise)


def load_with_pipeline(pipe, lora: LoraFile, name: str, state_dict: dict | None) -> None:
    """diffusers' ``load_lora_weights``: the file itself (its header's alphas and metadata
    with it), or ``state_dict`` where huajia converted it; one line when it cannot."""
    if state_dict is not None:
        source, kwargs = state_dict, {}
    elif lora.safetensors:
        source, kwargs = str(lora.weights.parent), {"weight_name": lora.weights.name}
    else:
        source, kwargs = lora.tensors(), {}
    try:
        with quiet_loaders():
            pipe.load_lora_weights(source, adapter_name=name, **kwargs)
    except HuajiaError:
        raise
    except Exception as error:  # noqa: BLE001 - a file diffusers cannot place, in any way
        raise HuajiaError(f"cannot load LoRA '{lora.path}' ({lora.format} format): "
                          f"{_one_line(error)}") from None


class NoFit(HuajiaError):
    """A LoRA file none of whose layers fits a module of the model."""


def fits_nothing(lora: LoraFile, label: str) -> NoFit:
    example = next((key for key in lora.keys if "lora" in key.lower()), lora.keys[0])
    return NoFit(f"LoRA '{lora.path}' fits no module of this {label} model: its layers "
                       f"({lora.format} names, e.g. '{example}') are another model's; use a "
                       f"LoRA made for {label}")


# -- the engine's LoRAs ------------------------------------------------------------------------
def _adapter_name(path: str) -> str:
    return "lora_" + hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:10]


def lora_hash(path: str | Path) -> str:
    """A1111's short LoRA hash ("Lora hashes"), first 12 hex digits: for a safetensors file
    sha256 of its tensor data, after its header (the 'addnet' hash); for any other file (a
    .ckpt) sha256 of the whole file, as A1111 hashes those."""
    file = weights_file(path)
    digest = hashlib.sha256()
    size = file.stat().st_size
    with open(file, "rb") as handle:
        header = int.from_bytes(handle.read(8), "little")
        start = 8 + header if 8 + header <= size and handle.read(1) == b"{" else 0
        handle.seek(start)
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def lora_name(path: str | Path) -> str:
    """What a LoRA is called: its file's stem, or its folder's name."""
    path = Path(path)
    if path.name == WEIGHT_NAME or path.name in PEFT_WEIGHT_NAMES:
        return path.parent.name  # a fixed file name: the folder names the LoRA
    return path.name if path.is_dir() or not path.suffix else path.stem


def _missing(path: str) -> HuajiaError:
    return HuajiaError(f"LoRA '{path}' does not exist; pass a LoRA file (.safetensors, or a "
                       f".ckpt such as DiffSynth-Studio writes) or a folder with {WEIGHT_NAME}")


def check_lora_paths(loras: tuple) -> None:
    """Fail fast (before a model loads) on LoRA files that are not there."""
    for spec in loras:
        if not Path(spec.path).exists():
            raise _missing(spec.path)


def apply_loras(pipe, wanted: tuple, loaded: tuple, family) -> tuple:
    """Make ``wanted`` (LoraSpecs) the active LoRAs of ``pipe``, whose model family
    (``engine/families``) loads and activates them; returns the new loaded set.

    Files are read and loaded once and kept; only the active set and scales change between
    requests, and a request without LoRAs turns them all off (the model as it was, bit for
    bit). A file that cannot be read, or fits no module of the model, is a one-line
    ``HuajiaError`` before anything is painted, and leaves the model as it was.
    """
    if not wanted and not loaded:
        return ()
    check_lora_paths(wanted)
    present = {_adapter_name(spec.path) for spec in loaded}
    new: list[str] = []
    before = adapter_state(family.lora_modules(pipe))
    try:
        for spec in wanted:
            name = _adapter_name(spec.path)
            if name in present:
                continue
            family.load_lora(pipe, read_lora(spec.path), name)
            present.add(name)
            new.append(name)
    except HuajiaError:
        for name in new:  # the files loaded before the one that failed go too
            family.drop_lora(pipe, name)
        restore(before)
        raise
    family.set_loras(pipe, [_adapter_name(s.path) for s in wanted], [s.scale for s in wanted])
    keep = {s.path: s for s in loaded}
    keep.update({s.path: s for s in wanted})
    return tuple(keep.values())


def embeddings_path(path: str | Path) -> Path:
    """Where a LoRA's new-word embeddings lie: beside its weights file, named as diffusers'
    advanced DreamBooth LoRA script names them (``<weights>_emb.safetensors``)."""
    path = Path(path)
    weights = path / WEIGHT_NAME if path.is_dir() else path
    return weights.with_name(weights.stem + "_emb.safetensors")


def read_new_words(path: str | Path):
    """(words, embeddings [n, dim]) saved with the LoRA at ``path``, or None when it has none."""
    from safetensors import safe_open

    emb = embeddings_path(path)
    if not emb.exists():
        return None
    try:
        with safe_open(str(emb), "pt") as handle:
            words = json.loads((handle.metadata() or {}).get("huajia_words", "[]"))
            vectors = handle.get_tensor("clip_l")
    except Exception as error:  # noqa: BLE001 - safetensors' own error is not an OSError
        raise HuajiaError(f"cannot read the LoRA's new words '{emb}': {error}") from error
    if len(words) != len(vectors):
        raise HuajiaError(f"'{emb}' names {len(words)} words for {len(vectors)} embeddings; "
                          "train the LoRA again")
    return tuple(words), vectors


def apply_new_words(pipe, wanted: list, active: tuple[str, ...]) -> tuple[str, ...]:
    """Give the tokenizer exactly the ``wanted`` new words (``read_new_words`` results of the
    active LoRAs, None for a LoRA without any), loaded with diffusers' ``load_textual_inversion``;
    words of LoRAs no longer wanted are unloaded, so a prompt without the LoRA reads as it did
    before it. Returns the words now active."""
    found = [w for w in wanted if w]
    words = tuple(word for ws, _ in found for word in ws)
    if words == active:
        return active
    if active:
        pipe.unload_textual_inversion(list(active))
    if not found:
        return ()
    if len(set(words)) != len(words):
        raise HuajiaError(f"two LoRAs bring the same new word ({', '.join(words)}); "
                          "use one of them at a time")
    if not hasattr(pipe, "load_textual_inversion"):
        raise HuajiaError(f"this LoRA brings new words ({', '.join(words)}), which this "
                          "pipeline cannot load; use it with an SD 1.x/2.x style pipeline")
    import torch

    try:
        pipe.load_textual_inversion(torch.cat([v for _, v in found]), token=list(words))
    except (ValueError, RuntimeError) as error:
        raise HuajiaError(f"cannot load the LoRA's new words {', '.join(words)}: {error}") from error
    return words
