"""Qwen-Image: an MMDiT on Qwen2.5-VL's hidden states, a Wan-style 3-D VAE (latents mean/std
per channel), packed latents. Its pipeline runs classifier-free guidance as
``true_cfg_scale`` and only when a negative prompt is given: huajia's guidance is that scale,
and an empty negative prompt is sent as " " (as Qwen's own examples do) so guidance works."""

from __future__ import annotations

from huajia.engine.families.base import CallPlan, Family


class QwenImage(Family):
    name = "qwenimage"
    label = "Qwen-Image"
    pipelines = ("QwenImagePipeline",)
    denoiser_name = "transformer"
    flow = True
    packed = True
    native = 1328  # Qwen-Image's 1:1 training size

    def prompt_kwargs(self, pipe, prompt: str, negative: str) -> dict:
        kwargs = super().prompt_kwargs(pipe, prompt, negative)
        kwargs["negative_prompt"] = kwargs["negative_prompt"] or " "
        return kwargs

    def call_plan(self, pipe, request, has_negative: bool) -> CallPlan:
        self.check_request(request)
        return CallPlan({"true_cfg_scale": request.guidance, "guidance_scale": None})
