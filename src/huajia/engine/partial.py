"""huajia's own partial denoise, as ComfyUI runs every model: the text-to-image pipeline painted
from given latents over the last part of its schedule, for families whose diffusers has no
image-to-image or inpainting pipeline, and for latents (the latent hires fix, thinking's repaints).

``tail_scheduler`` makes the run's scheduler such a schedule: whatever the pipeline asks of
``set_timesteps``, it sets the whole schedule of ``steps`` steps (with what the family's pipeline
passes: sigma spacing, shift) and keeps its steps from ``start`` on (the steps diffusers'
image-to-image pipelines run), cut from every per-step array so that the scheduler's own
bookkeeping (e.g. a multistep solver's lower-order last step) sees the run it does. The latents
it starts from are already noised (``init_noise_sigma`` is 1). After every step ``KeepKnown``
may put the known latents back outside a mask: in the scheduler, so it works with every
pipeline (PixArt-Σ's has no step-end callback).

This is not a sampler of its own: the pipeline's loop and the scheduler's ``step`` do the work.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from huajia.engine.families import Family


def first_step(steps: int, strength: float) -> int:
    """The first of ``steps`` steps a run at ``strength`` paints (diffusers' img2img rule:
    ``int(steps · strength)`` steps are painted)."""
    return steps - min(int(steps * strength), steps)


class KeepKnown:
    """Masked repaint: outside ``mask`` the latents follow ``known``, noised to each step's level
    the family's way (flow models re-noised along x = (1 − σ)·x0 + σ·ε), so only the masked part
    is painted again. All three in the pipeline's layout (packed where the family packs)."""

    def __init__(self, known: torch.Tensor, noise: torch.Tensor, mask: torch.Tensor,
                 family: Family):
        self.known, self.noise, self.mask, self.family = known, noise, mask, family

    def __call__(self, scheduler, latents: torch.Tensor, step: int) -> torch.Tensor:
        """``latents`` at the level step ``step`` starts from, the known part put back."""
        known_now = self.family.noise_to(scheduler, self.known, self.noise, step)
        return latents * self.mask + known_now.to(latents.dtype) * (1 - self.mask)


# the per-step arrays of diffusers' schedulers (all indexed by the step): a schedule's tail is
# each of them cut at its first kept step; the rest (training betas, the step count that
# spaces DDIM's timesteps) stays the whole schedule's
PER_STEP = ("timesteps", "sigmas", "sigmas_interpol", "sigmas_up", "sigmas_down", "order_list")


def tail_scheduler(scheduler, steps: int, start: int, schedule: dict,
                   keep: KeepKnown | None = None):
    """A fresh copy of ``scheduler`` that runs steps ``start``… of a ``steps``-step schedule
    (see the module's docstring); ``schedule``: the family's ``schedule_kwargs``."""
    base = type(scheduler)
    accepted = inspect.signature(base.set_timesteps).parameters
    schedule = {key: value for key, value in schedule.items() if key in accepted}

    class Tail(base):
        def set_timesteps(self, num_inference_steps=None, device=None, sigmas=None,
                          timesteps=None, mu=None, **kwargs):
            # named as the pipelines' retrieve_timesteps looks for them; ``schedule`` rules
            base.set_timesteps(self, steps, device, **schedule)
            first = start * self.order  # second-order samplers keep two entries a step
            for name in PER_STEP:
                if getattr(self, name, None) is not None:
                    setattr(self, name, getattr(self, name)[first:])
            self.position = 0  # steps done in this run
            if runs_by_index:
                self.set_begin_index(0)

        @property
        def init_noise_sigma(self):
            return 1.0  # the start latents are noised already

        @init_noise_sigma.setter
        def init_noise_sigma(self, value):
            pass

        def step(self, model_output, timestep, sample, *args, **kwargs):
            out = base.step(self, model_output, timestep, sample, *args, **kwargs)
            self.position += 1
            if keep is None:
                return out
            if isinstance(out, tuple):
                return (keep(self, out[0], self.position), *out[1:])
            out.prev_sample = keep(self, out.prev_sample, self.position)
            return out

    runs_by_index = hasattr(base, "set_begin_index")  # DDIM, PNDM, DDPM go by timestep alone
    Tail.__name__ = Tail.__qualname__ = base.__name__
    return Tail.from_config(scheduler.config)
