"""Loading LoRAs onto a pipeline by path and scale (diffusers/peft format, e.g. the
``pytorch_lora_weights.safetensors`` that huajia and kohya-style trainers write), with the new
words a pivotally tuned LoRA brings (its ``*_emb.safetensors`` textual-inversion embeddings)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from huajia.errors import HuajiaError

WEIGHT_NAME = "pytorch_lora_weights.safetensors"


def _adapter_name(path: str) -> str:
    return "lora_" + hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:10]


def lora_hash(path: str | Path) -> str:
    """A1111's short LoRA hash ("Lora hashes"): sha256 of a safetensors file's tensor data,
    after its header (the 'addnet' hash), first 12 hex digits."""
    file = Path(path)
    if file.is_dir():
        file = file / WEIGHT_NAME
    digest = hashlib.sha256()
    with open(file, "rb") as handle:
        header = int.from_bytes(handle.read(8), "little")
        handle.seek(8 + header)
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def lora_name(path: str | Path) -> str:
    """What a LoRA is called: its file's stem, or its folder's name."""
    path = Path(path)
    if path.name == WEIGHT_NAME:  # diffusers' fixed file name: the folder names the LoRA
        return path.parent.name
    return path.name if path.is_dir() or not path.suffix else path.stem


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
