"""A run's UNet every K steps (``OUT/snapshots/step_NNNNN.safetensors``), so the held-out curve
of a long run can be measured afterwards and its best point kept; the pipeline folder a snapshot
makes; and the UNet split into files of bounded size (a GPU job returns at most 16 MiB a file).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from huajia.errors import HuajiaError

SNAPSHOTS = "snapshots"
UNET_FILE = "unet/diffusion_pytorch_model.safetensors"


def save_snapshot(unet: torch.nn.Module, out: Path, step: int) -> Path:
    path = Path(out) / SNAPSHOTS / f"step_{step:05d}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in unet.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    save_file(state, tmp, metadata={"format": "pt", "step": str(step)})
    tmp.replace(path)  # atomic: a stopped run never leaves half a snapshot
    return path


def list_snapshots(out: Path) -> list[tuple[int, Path]]:
    """(step, file) of every snapshot, in step order."""
    folder = Path(out) / SNAPSHOTS
    return sorted((int(p.stem.split("_")[1]), p) for p in folder.glob("step_*.safetensors"))


def with_unet(model_dir: Path, state: dict[str, torch.Tensor], to: Path) -> Path:
    """A copy of the pipeline folder ``model_dir`` whose UNet weights are ``state`` (stored in
    the dtype the folder's own UNet file has)."""
    model_dir, to = Path(model_dir), Path(to)
    original = load_file(model_dir / UNET_FILE)
    if set(original) != set(state):
        missing = sorted(set(original) ^ set(state))[:3]
        raise HuajiaError(f"these UNet weights do not fit the pipeline in '{model_dir}' "
                          f"(keys differ, e.g. {', '.join(missing)}); use the run's own base model")
    if to.exists():
        shutil.rmtree(to)
    shutil.copytree(model_dir, to)
    dtype = next(iter(original.values())).dtype
    save_file({k: v.to(dtype).contiguous() for k, v in state.items()}, to / UNET_FILE,
              metadata={"format": "pt"})
    return to


def write_shards(state: dict[str, torch.Tensor], folder: Path, stem: str, max_bytes: int) -> list[Path]:
    """``state`` as ``stem-K.safetensors`` files of at most ``max_bytes`` each (one tensor
    larger than that is refused)."""
    groups: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key in sorted(state):
        tensor = state[key].contiguous()
        nbytes = tensor.numel() * tensor.element_size()
        if nbytes > max_bytes:
            raise HuajiaError(f"tensor '{key}' ({nbytes} bytes) does not fit a {max_bytes}-byte file")
        if size + nbytes > max_bytes - 64 * 1024:  # room for the header
            groups.append({})
            size = 0
        groups[-1][key] = tensor
        size += nbytes
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, group in enumerate(groups):
        paths.append(folder / f"{stem}-{k}.safetensors")
        save_file(group, paths[-1], metadata={"format": "pt", "part": f"{k + 1}/{len(groups)}"})
    return paths


def read_shards(folder: Path, stem: str) -> dict[str, torch.Tensor]:
    paths = sorted(Path(folder).glob(f"{stem}-*.safetensors"))
    if not paths:
        raise HuajiaError(f"no '{stem}-K.safetensors' files in '{folder}'")
    parts = [load_file(p) for p in paths]
    expected = int(load_meta(paths[0]).get("part", "1/1").split("/")[1])
    if len(parts) != expected:
        raise HuajiaError(f"'{folder}' holds {len(parts)} of the {expected} parts of '{stem}'; "
                          "copy all of them")
    return {k: v for part in parts for k, v in part.items()}


def load_meta(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return f.metadata() or {}
