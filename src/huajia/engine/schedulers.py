"""Samplers by the names users paste, built from the model's own scheduler config.

A sampler is named huajia's way (``dpmpp_2m_karras``), A1111's way (``DPM++ 2M Karras``) or
ComfyUI's way (sampler ``dpmpp_2m`` with scheduler ``karras``: ``dpmpp_2m karras``); all mean
the same thing. It is built on the pipeline's scheduler config, so the model's noise schedule,
prediction type, zero-terminal-SNR and shift carry over. Models that denoise by flow matching
(SD3, Flux, Sana, …) get the flow version of a sampler (FlowMatch Euler/Heun, UniPC, DPM++ and
DEIS on flow sigmas with the model's shift); a sampler with no flow version, or one the
pipeline cannot drive, is refused in one line naming those that can, never replaced.

The tables name diffusers classes as strings, so the request vocabulary can list the names
without importing diffusers.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass

from huajia.errors import HuajiaError


@dataclass(frozen=True)
class Sampler:
    name: str  # huajia's name (and the CLI's): dpmpp_2m
    label: str  # A1111's: DPM++ 2M
    vp: str | None  # diffusers class for noise- or v-predicting models
    flow: str | None  # diffusers class for flow-matching models
    options: tuple[tuple[str, object], ...] = ()  # config set on either
    comfy: str = ""  # ComfyUI's sampler name, where it differs from ``name``


SAMPLERS = {s.name: s for s in (
    Sampler("euler", "Euler", "EulerDiscreteScheduler", "FlowMatchEulerDiscreteScheduler"),
    Sampler("euler_a", "Euler a", "EulerAncestralDiscreteScheduler", None,
            comfy="euler_ancestral"),
    Sampler("heun", "Heun", "HeunDiscreteScheduler", "FlowMatchHeunDiscreteScheduler"),
    Sampler("lms", "LMS", "LMSDiscreteScheduler", None),
    Sampler("dpm2", "DPM2", "KDPM2DiscreteScheduler", None, comfy="dpm_2"),
    Sampler("dpm2_a", "DPM2 a", "KDPM2AncestralDiscreteScheduler", None,
            comfy="dpm_2_ancestral"),
    Sampler("dpmpp_2m", "DPM++ 2M", "DPMSolverMultistepScheduler", "DPMSolverMultistepScheduler",
            (("algorithm_type", "dpmsolver++"), ("solver_order", 2))),
    Sampler("dpmpp_2m_sde", "DPM++ 2M SDE", "DPMSolverMultistepScheduler",
            "DPMSolverMultistepScheduler", (("algorithm_type", "sde-dpmsolver++"),
                                            ("solver_order", 2))),
    Sampler("dpmpp_sde", "DPM++ SDE", "DPMSolverSDEScheduler", None),
    Sampler("dpmpp_2s_a", "DPM++ 2S a", "DPMSolverSinglestepScheduler", None,
            (("algorithm_type", "dpmsolver++"), ("solver_order", 2)), comfy="dpmpp_2s_ancestral"),
    Sampler("unipc", "UniPC", "UniPCMultistepScheduler", "UniPCMultistepScheduler",
            comfy="uni_pc"),
    Sampler("deis", "DEIS", "DEISMultistepScheduler", "DEISMultistepScheduler"),
    Sampler("ddim", "DDIM", "DDIMScheduler", None),
    Sampler("ddpm", "DDPM", "DDPMScheduler", None),
    Sampler("plms", "PLMS", "PNDMScheduler", None, (("skip_prk_steps", True),)),
    Sampler("lcm", "LCM", "LCMScheduler", "FlowMatchLCMScheduler"),
)}

# ComfyUI's schedulers (A1111's suffixes): how the sigmas are spaced
SCHEDULES = {
    "normal": (),
    "karras": (("use_karras_sigmas", True),),
    "exponential": (("use_exponential_sigmas", True),),
    "beta": (("use_beta_sigmas", True),),
    "sgm_uniform": (("timestep_spacing", "trailing"),),
    "simple": (("timestep_spacing", "trailing"),),
}
MODEL = "model"  # the pipeline's own scheduler, as its folder configures it


def _names() -> tuple[str, ...]:
    return tuple(name if schedule == "normal" else f"{name}_{schedule}"
                 for name in SAMPLERS for schedule in SCHEDULES)


SAMPLER_NAMES = (*_names(), MODEL)  # every name the request vocabulary accepts


def canonical(text: str | None) -> str | None:
    """huajia's name of a sampler written any known way (``DPM++ 2M Karras``,
    ``dpmpp_2m karras``, ``dpmpp_2m_karras``); ``text`` unchanged if it is none of them."""
    if text is None:
        return None
    key = re.sub(r"[\s/:_-]+", " ", text.strip().lower().replace("++", "pp"))
    for sampler in SAMPLERS.values():
        for spelled in {sampler.name, sampler.comfy or sampler.name, sampler.label.lower()}:
            spelled = spelled.replace("++", "pp").replace("_", " ")
            for schedule in SCHEDULES:
                if key in (spelled, f"{spelled} {schedule}".replace("_", " ")):
                    return sampler.name if schedule == "normal" else f"{sampler.name}_{schedule}"
                if key == spelled and schedule == "normal":
                    return sampler.name
    return MODEL if key == MODEL else text


def split_name(name: str) -> tuple[Sampler, str]:
    """(sampler, schedule) of a canonical name."""
    for schedule in SCHEDULES:
        if schedule != "normal" and name.endswith("_" + schedule):
            base = name[:-len(schedule) - 1]
            if base in SAMPLERS:
                return SAMPLERS[base], schedule
    if name in SAMPLERS:
        return SAMPLERS[name], "normal"
    raise HuajiaError(f"unknown scheduler '{name}'; known: {', '.join(SAMPLERS)} (each also "
                      f"with _{', _'.join(s for s in SCHEDULES if s != 'normal')}) or model")


def is_flow(base_config: dict) -> bool:
    """Does the model this scheduler config belongs to denoise by flow matching?"""
    return (base_config.get("_class_name", "").startswith("FlowMatch")
            or base_config.get("prediction_type") == "flow_prediction"
            or bool(base_config.get("use_flow_sigmas")))


def _class(class_name: str):
    import diffusers

    try:
        return getattr(diffusers, class_name)
    except (ImportError, AttributeError) as error:  # DPMSolverSDEScheduler needs torchsde
        raise HuajiaError(f"the sampler needs a package that is not installed ({error})") from None


def make_scheduler(name: str | None, base_config: dict):
    """A fresh scheduler: ``name`` (None or 'model': the pipeline's own class) on the
    pipeline's config, in its flow version for flow-matching models."""
    if name in (None, MODEL):
        return _class(base_config.get("_class_name", "DDIMScheduler")).from_config(base_config)
    sampler, schedule = split_name(canonical(name))
    flow = is_flow(base_config)
    class_name = sampler.flow if flow else sampler.vp
    if class_name is None:
        raise HuajiaError(f"sampler '{name}' cannot serve a flow-matching model; use one of "
                          f"{', '.join(flow_samplers())}")
    cls = _class(class_name)
    options = dict(sampler.options) | dict(SCHEDULES[schedule])
    if flow and not class_name.startswith("FlowMatch"):
        if schedule in ("karras", "exponential", "beta"):  # these space VP sigmas: NaN here
            raise HuajiaError(f"the '{schedule}' schedule spaces noise-prediction sigmas; on a "
                              f"flow-matching model use '{sampler.name}' (its sigmas follow the "
                              f"model's shift) or 'euler_{schedule}'")
        options |= _flow_options(base_config)
    if flow:
        cls = _taking_sigmas(cls)
    accepted = set(inspect.signature(cls.__init__).parameters)
    missing = [key for key in dict(SCHEDULES[schedule]) if key not in accepted]
    if missing:
        raise HuajiaError(f"sampler '{sampler.name}' has no '{schedule}' schedule; use "
                          f"'{sampler.name}' or another sampler")
    return cls.from_config(base_config, **{k: v for k, v in options.items() if k in accepted})


def _taking_sigmas(cls):
    """``cls`` as flow pipelines drive it: several (Chroma, Qwen-Image, Z-Image, Lumina 2)
    always pass ``sigmas`` (their default spacing) and ``mu`` (a dynamic shift). A solver that
    spaces its own sigmas on the model's shift takes both: the spacing is replaced by its own,
    and ``mu`` counts only where the model shifts dynamically. Their image-to-image and
    inpainting pipelines noise a picture with ``scale_noise``: on flow sigmas a solver's
    ``add_noise`` is that, (1 − σ)·x + σ·ε."""
    if cls.__name__.startswith("FlowMatch") and \
            "sigmas" in inspect.signature(cls.set_timesteps).parameters:
        return cls
    takes_mu = "mu" in inspect.signature(cls.set_timesteps).parameters

    def set_timesteps(self, num_inference_steps=None, device=None, sigmas=None, mu=None, **kw):
        if num_inference_steps is None and sigmas is not None:
            num_inference_steps = len(sigmas)
        if takes_mu and mu is not None and self.config.get("use_dynamic_shifting"):
            kw["mu"] = mu
        return cls.set_timesteps(self, num_inference_steps, device, **kw)

    def scale_noise(self, sample, timestep, noise=None):
        return self.add_noise(sample, noise, timestep)

    methods = {"set_timesteps": set_timesteps, "__doc__": _taking_sigmas.__doc__}
    if not hasattr(cls, "scale_noise"):
        methods["scale_noise"] = scale_noise
    return type(cls.__name__, (cls,), methods)


def _flow_options(base_config: dict) -> dict:
    """A multistep solver on the flow model's sigmas, with its shift (fixed or dynamic)."""
    return {"use_flow_sigmas": True, "prediction_type": "flow_prediction",
            "flow_shift": base_config.get("shift", base_config.get("flow_shift", 1.0)),
            "use_dynamic_shifting": bool(base_config.get("use_dynamic_shifting")),
            "time_shift_type": base_config.get("time_shift_type", "exponential")}


def flow_samplers() -> list[str]:
    return [s.name for s in SAMPLERS.values() if s.flow]


SCHEDULE_LABELS = {"karras": "Karras", "exponential": "Exponential", "beta": "Beta",
                   "sgm_uniform": "SGM Uniform", "simple": "Simple"}


def sampler_label(name: str | None, base_config: dict) -> str:
    """A1111's label of the sampler ``name`` paints with on this model (``DPM++ 2M Karras``)."""
    if name in (None, MODEL):
        own = base_config.get("_class_name", "DDIMScheduler")
        algorithm = base_config.get("algorithm_type")
        for sampler in SAMPLERS.values():
            if own in (sampler.vp, sampler.flow) and \
                    dict(sampler.options).get("algorithm_type", algorithm) == algorithm:
                return sampler.label
        return own
    sampler, schedule = split_name(canonical(name))
    return sampler.label + (f" {SCHEDULE_LABELS[schedule]}" if schedule != "normal" else "")


def sampler_from_label(label: str) -> str | None:
    """huajia's name of an infotext's ``Sampler`` (A1111 label), or None if unknown."""
    name = canonical(label)
    return name if name in SAMPLER_NAMES else None
