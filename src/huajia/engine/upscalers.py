"""Finishing a decoded picture: upscaling (Lanczos, or any ESRGAN-family file spandrel loads)
and sharpening (an unsharp mask). Pure functions of their inputs; model files are loaded once
per ``Upscalers`` object (one per engine)."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from huajia.errors import HuajiaError

LANCZOS = "lanczos"
MAX_OUTPUT_SIDE = 2048
MAX_SHARPEN = 5.0


def sharpen(image: Image.Image, amount: float) -> Image.Image:
    """Unsharp mask with the 4-neighbour Laplacian: ``image + amount * (4·x - neighbours)``.
    ``amount`` 1 is the 3×3 kernel [[0,-1,0],[-1,5,-1],[0,-1,0]] of OpenCV tutorials."""
    if not 0 <= amount <= MAX_SHARPEN:
        raise HuajiaError(f"sharpen={amount} is out of range; use 0 (off) to {MAX_SHARPEN:g}")
    if amount == 0:
        return image
    kernel = np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], dtype=np.float32) * amount
    kernel[1, 1] += 1.0
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    out = cv2.filter2D(pixels, -1, kernel, borderType=cv2.BORDER_REFLECT)
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8))


def target_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    """``size`` × ``scale``, rounded to multiples of 8 (what the models paint), within bounds."""
    width, height = (max(8, round(side * scale / 8) * 8) for side in size)
    if max(width, height) > MAX_OUTPUT_SIDE:
        raise HuajiaError(f"{size[0]}x{size[1]} × {scale:g} is {width}x{height}, past the "
                          f"{MAX_OUTPUT_SIDE} px limit; use a smaller scale or size")
    return width, height


@contextlib.contextmanager
def _torchvision_stand_in():
    """spandrel imports torchvision for two architectures (LaMa inpainting, RestoreFormer faces),
    none of them an upscaler. The pinned CPU torch has no matching torchvision, so while
    spandrel is imported a stand-in answers those imports, and it is removed afterwards (nothing
    else ever sees it); using either architecture raises a clear error."""
    if importlib.util.find_spec("torchvision") is not None:
        yield
        return

    def missing(*args, **kwargs):
        raise HuajiaError("this spandrel architecture needs torchvision, which is not installed")

    names = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")
    modules = {name: types.ModuleType(name) for name in names}
    functional = modules["torchvision.transforms.functional"]
    functional.rotate = functional.normalize = missing
    functional.InterpolationMode = types.SimpleNamespace(BILINEAR="bilinear", NEAREST="nearest")
    modules["torchvision"].transforms = modules["torchvision.transforms"]
    modules["torchvision.transforms"].functional = functional
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name in names:
            sys.modules.pop(name, None)


def _spandrel():
    try:
        with _torchvision_stand_in():
            import spandrel
    except ImportError as error:
        raise HuajiaError("upscaler files need spandrel: pip install 'huajia[upscale]' "
                          f"({error})") from None
    return spandrel


class ModelUpscaler:
    """An image-to-image super-resolution network from a file (ESRGAN, Real-ESRGAN, SwinIR, …)."""

    def __init__(self, path: str | Path, device: torch.device | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise HuajiaError(f"upscaler file '{path}' does not exist; give an ESRGAN-family "
                              ".pth/.safetensors file, or use lanczos")
        spandrel = _spandrel()
        try:
            model = spandrel.ModelLoader(device=device or torch.device("cpu")).load_from_file(self.path)
        except Exception as error:  # noqa: BLE001 - spandrel raises many kinds; all mean "not a model"
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise HuajiaError(f"'{self.path.name}' is not an upscaler model spandrel can load "
                              f"({reason[:120]}); use an ESRGAN-family .pth/.safetensors file "
                              "or lanczos") from None
        if not isinstance(model, spandrel.ImageModelDescriptor):
            raise HuajiaError(f"'{self.path.name}' is a {model.architecture.name} "
                              f"{model.purpose} model, not an upscaler")
        self.model = model.eval()
        self.scale = int(model.scale)
        self.name = self.path.stem

    @torch.no_grad()
    def __call__(self, image: Image.Image) -> Image.Image:
        pixels = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0)
        out = self.model(pixels.permute(2, 0, 1)[None].to(self.model.device))
        array = out[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy()
        return Image.fromarray(np.rint(array * 255).astype(np.uint8))


class Upscalers:
    """``upscale(image, size, name)``: Lanczos, or the model file ``name`` (loaded once)."""

    def __init__(self, device: torch.device | None = None):
        self.device = device
        self.models: dict[str, ModelUpscaler] = {}

    def get(self, name: str) -> ModelUpscaler | None:
        if name.lower() == LANCZOS:
            return None
        if name not in self.models:
            self.models[name] = ModelUpscaler(name, self.device)
        return self.models[name]

    def upscale(self, image: Image.Image, size: tuple[int, int], name: str = LANCZOS) -> Image.Image:
        """``image`` at ``size``: through the model (repeated while it is still too small),
        then Lanczos to the exact size."""
        model = self.get(name)
        while model is not None and model.scale > 1 and image.width < size[0] and \
                image.width * model.scale <= 2 * MAX_OUTPUT_SIDE:
            image = model(image)
        return image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)


def label(name: str) -> str:
    """How an upscaler is named in the infotext: 'Lanczos', 'Latent', or the file's stem."""
    if name.lower() in (LANCZOS, "latent"):
        return name.capitalize()
    return Path(name).stem
