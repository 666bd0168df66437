"""Loading LoRAs onto a pipeline by path and scale (diffusers/peft format, e.g. the
``pytorch_lora_weights.safetensors`` that huajia and kohya-style trainers write)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from huajia.errors import HuajiaError


def _adapter_name(path: str) -> str:
    return "lora_" + hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:10]


def check_lora_paths(loras: tuple) -> None:
    """Fail fast (before a model loads) on LoRA files that are not there."""
    for spec in loras:
        if not Path(spec.path).exists():
            raise HuajiaError(f"LoRA '{spec.path}' does not exist; pass a .safetensors file or "
                              "a folder with pytorch_lora_weights.safetensors")


def apply_loras(pipe, wanted: tuple, loaded: tuple) -> tuple:
    """Make ``wanted`` (LoraSpecs) the active LoRAs; returns the new loaded set.

    Already-loaded files are reused; only the active set and scales change between requests.
    """
    if not wanted and not loaded:
        return ()
    check_lora_paths(wanted)
    loaded_names = {_adapter_name(spec.path) for spec in loaded}
    for spec in wanted:
        path = Path(spec.path)
        name = _adapter_name(spec.path)
        if name in loaded_names:
            continue
        try:
            if path.is_dir():
                pipe.load_lora_weights(str(path), adapter_name=name)
            else:
                pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=name)
        except (ValueError, OSError, KeyError, RuntimeError) as error:
            raise HuajiaError(f"cannot load LoRA '{spec.path}': {error}") from error
        loaded_names.add(name)
    if wanted:
        # set_adapters does not undo an earlier disable_lora (a request without LoRAs)
        pipe.enable_lora()
        pipe.set_adapters([_adapter_name(s.path) for s in wanted], [s.scale for s in wanted])
    else:
        pipe.disable_lora()
    keep = {s.path: s for s in loaded}
    keep.update({s.path: s for s in wanted})
    return tuple(keep.values())
