"""Model families: one small module each (``base`` says what a family answers).

``detect(pipe)`` tells a loaded pipeline's family from its class (and, for pipelines huajia
does not know by name, from its components); ``by_name(name)`` is the ``--family`` override for
a pipeline that cannot be told.
"""

from __future__ import annotations

from huajia.engine.families.base import CallPlan, Family
from huajia.engine.families.chroma import Chroma
from huajia.engine.families.flux import Flux
from huajia.engine.families.hidream import HiDream
from huajia.engine.families.kolors import Kolors
from huajia.engine.families.lumina2 import Lumina2
from huajia.engine.families.pixart import PixArtSigma
from huajia.engine.families.qwenimage import QwenImage
from huajia.engine.families.sana import Sana
from huajia.engine.families.sd import StableDiffusion
from huajia.engine.families.sd3 import StableDiffusion3
from huajia.engine.families.sdxl import StableDiffusionXL
from huajia.engine.families.zimage import ZImage
from huajia.errors import HuajiaError

__all__ = ["FAMILY_NAMES", "CallPlan", "Family", "by_name", "detect"]

_FAMILIES = (StableDiffusion, StableDiffusionXL, Kolors, StableDiffusion3, Flux, Chroma,
             QwenImage, ZImage, Sana, PixArtSigma, Lumina2, HiDream)
FAMILY_NAMES = tuple(cls.name for cls in _FAMILIES)


def by_name(name: str) -> Family:
    for cls in _FAMILIES:
        if cls.name == name:
            return cls()
    raise HuajiaError(f"unknown family '{name}'; known: {', '.join(FAMILY_NAMES)}")


def detect(pipe, name: str | None = None) -> Family:
    """The family of ``pipe`` (``name`` forces one)."""
    if name:
        return by_name(name)
    for cls in _FAMILIES:
        family = cls()
        if family.matches(pipe):
            return family
    # a pipeline class huajia does not know: its components may still say what it is
    components = getattr(pipe, "components", {})
    if components.get("unet") is not None and components.get("text_encoder") is not None:
        return StableDiffusionXL() if components.get("text_encoder_2") is not None \
            else StableDiffusion()
    raise HuajiaError(f"cannot tell which model family a {type(pipe).__name__} is; pass "
                      f"--family (known: {', '.join(FAMILY_NAMES)})")
