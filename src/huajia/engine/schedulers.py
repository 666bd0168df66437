"""Schedulers by name, built from the pipeline's own scheduler config (so a model's noise
schedule, prediction type and timestep spacing carry over), with A1111's sampler labels."""

from __future__ import annotations

from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    UniPCMultistepScheduler,
)

from huajia.errors import HuajiaError

SCHEDULERS = {
    "ddim": (DDIMScheduler, "DDIM"),
    "euler": (EulerDiscreteScheduler, "Euler"),
    "euler_a": (EulerAncestralDiscreteScheduler, "Euler a"),
    "dpmpp_2m": (DPMSolverMultistepScheduler, "DPM++ 2M"),
    "unipc": (UniPCMultistepScheduler, "UniPC"),
    "ddpm": (DDPMScheduler, "DDPM"),
}


def make_scheduler(name: str | None, base_config: dict):
    """A fresh scheduler: ``name`` (None: the pipeline's own class) on the pipeline's config."""
    if name is None:
        class_name = base_config.get("_class_name", "DDIMScheduler")
        matches = [cls for cls, _ in SCHEDULERS.values() if cls.__name__ == class_name]
        cls = matches[0] if matches else DDIMScheduler
    elif name in SCHEDULERS:
        cls = SCHEDULERS[name][0]
    else:
        raise HuajiaError(f"unknown scheduler '{name}'; known: {', '.join(SCHEDULERS)}")
    return cls.from_config(base_config)


def sampler_label(scheduler) -> str:
    for cls, label in SCHEDULERS.values():
        if type(scheduler) is cls:
            return label
    return type(scheduler).__name__
