"""Schedulers by name, built from the pipeline's own scheduler config (so a model's noise
schedule, prediction type and timestep spacing carry over), with A1111's sampler labels.

The table names diffusers classes as strings, so the request vocabulary can list the names
without importing diffusers."""

from __future__ import annotations

from huajia.errors import HuajiaError

SCHEDULERS = {  # name → (diffusers class, A1111 sampler label)
    "ddim": ("DDIMScheduler", "DDIM"),
    "euler": ("EulerDiscreteScheduler", "Euler"),
    "euler_a": ("EulerAncestralDiscreteScheduler", "Euler a"),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", "DPM++ 2M"),
    "unipc": ("UniPCMultistepScheduler", "UniPC"),
    "ddpm": ("DDPMScheduler", "DDPM"),
}


def _class(class_name: str):
    import diffusers

    return getattr(diffusers, class_name)


def make_scheduler(name: str | None, base_config: dict):
    """A fresh scheduler: ``name`` (None or 'model': the pipeline's own class) on the
    pipeline's config."""
    if name in (None, "model"):
        class_name = base_config.get("_class_name", "DDIMScheduler")
        known = [cls for cls, _ in SCHEDULERS.values() if cls == class_name]
        cls = _class(known[0] if known else "DDIMScheduler")
    elif name in SCHEDULERS:
        cls = _class(SCHEDULERS[name][0])
    else:
        raise HuajiaError(f"unknown scheduler '{name}'; known: {', '.join(SCHEDULERS)}")
    return cls.from_config(base_config)


def sampler_label(scheduler) -> str:
    for class_name, label in SCHEDULERS.values():
        if type(scheduler).__name__ == class_name:
            return label
    return type(scheduler).__name__
