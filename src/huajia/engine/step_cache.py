"""diffusers' First-Block Cache on a denoiser (``FirstBlockCacheConfig``): at each step the
first transformer block runs, and when its output changed less than the threshold since the
last step, the other blocks are skipped and their last residual reused.

The cache keeps its state per "cache context", which a pipeline names around each denoiser call
(``transformer.cache_context("cond")``: Flux's and Qwen-Image's text-to-image pipelines do).
Pipelines that name none (Flux's image-to-image, used by the hires fix and edits) would make the
cache raise, so a diffusers hook on the denoiser gives such calls one context of their own;
the pipeline's ``maybe_free_model_hooks`` resets the cache after every call either way.
"""

from __future__ import annotations

import torch
from diffusers.hooks import FirstBlockCacheConfig, HookRegistry, ModelHook
from diffusers.hooks.hooks import BaseState, StateManager

from huajia.errors import HuajiaError

_HOOK = "huajia_cache_context"


class _NoState(BaseState):
    def reset(self, *args, **kwargs) -> None:
        pass


class _ContextSeen(StateManager):
    """A state manager that only remembers the context the pipeline set (None: none)."""

    def __init__(self) -> None:
        super().__init__(_NoState)
        self.current = None

    def set_context(self, context) -> None:
        super().set_context(context)
        self.current = context


class DefaultCacheContext(ModelHook):
    """Runs a denoiser call that came without a cache context inside one ("huajia")."""

    _is_stateful = True  # so that diffusers hands it the pipeline's contexts

    def __init__(self) -> None:
        super().__init__()
        self.seen = _ContextSeen()

    def new_forward(self, module: torch.nn.Module, *args, **kwargs):
        if self.seen.current is not None:
            return self.fn_ref.original_forward(*args, **kwargs)
        with module.cache_context("huajia"):
            return self.fn_ref.original_forward(*args, **kwargs)

    def reset_state(self, module: torch.nn.Module) -> torch.nn.Module:
        return module


def enable_step_cache(denoiser: torch.nn.Module, threshold: float, label: str) -> None:
    """First-Block Cache at ``threshold`` on ``denoiser``, or one line saying why it cannot."""
    if not hasattr(denoiser, "enable_cache"):
        raise HuajiaError(f"step_cache is not available on {label} (diffusers has no cache "
                          f"for {type(denoiser).__name__}); use step_cache 0")
    try:
        denoiser.enable_cache(FirstBlockCacheConfig(threshold=threshold))
    except ValueError as error:  # blocks the cache does not know how to skip
        raise HuajiaError(f"step_cache is not available on {label} ({str(error).splitlines()[0]})"
                          "; use step_cache 0") from None
    HookRegistry.check_if_exists_or_initialize(denoiser).register_hook(DefaultCacheContext(), _HOOK)
