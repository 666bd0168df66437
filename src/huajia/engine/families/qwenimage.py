"""Qwen-Image: an MMDiT on Qwen2.5-VL's hidden states, a Wan-style 3-D VAE (latents mean/std
per channel), packed latents. Its pipeline runs classifier-free guidance as
``true_cfg_scale`` and only when a negative prompt is given: huajia's guidance is that scale,
and an empty negative prompt is sent as " " (as Qwen's own examples do) so guidance works."""

from __future__ import annotations

from huajia.engine.families.base import CallPlan, Family
from huajia.errors import HuajiaError


class QwenImage(Family):
    name = "qwenimage"
    label = "Qwen-Image"
    pipelines = ("QwenImagePipeline",)
    img2img, inpaint = "QwenImageImg2ImgPipeline", "QwenImageInpaintPipeline"
    sigma_spacing = True
    lora_targets = ("to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj",
                    "to_add_out")  # the image and the text stream's attention
    denoiser_name = "transformer"
    flow = True
    packed = True
    native = 1328  # Qwen-Image's 1:1 training size

    def prompt_kwargs(self, pipe, prompt: str, negative: str, dtype=None) -> dict:
        kwargs = super().prompt_kwargs(pipe, prompt, negative, dtype)
        kwargs["negative_prompt"] = kwargs["negative_prompt"] or " "
        return kwargs

    def call_plan(self, pipe, request, has_negative: bool) -> CallPlan:
        self.check_request(request)
        if request.steps < 2 and pipe.scheduler.config.get("shift_terminal"):
            raise HuajiaError(f"{self.label} needs at least 2 steps (its scheduler stretches the "
                              "schedule to a terminal shift, which divides by zero at 1 step); "
                              "use steps 2 or more")
        return CallPlan({"true_cfg_scale": request.guidance, "guidance_scale": None})

    # its VAE works on videos: a picture is one frame (B, C, 1, H, W)
    def vae_encode(self, vae, pixels):
        return vae.encode(pixels.unsqueeze(2)).latent_dist.mode()[:, :, 0]

    def vae_decode(self, vae, raw):
        return vae.decode(raw.unsqueeze(2)).sample[:, :, 0]
