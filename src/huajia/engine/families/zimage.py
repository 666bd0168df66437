"""Z-Image: a single-stream DiT on Qwen3's hidden states, flow matching. Its pipeline's
guidance g computes pos + g (pos - neg), so g = 0 is no guidance and g equals a usual CFG scale
of g + 1: huajia's guidance keeps the usual meaning (Z-Image-Turbo paints at guidance 1)."""

from __future__ import annotations

from huajia.engine.families.base import CallPlan, Family


class ZImage(Family):
    name = "zimage"
    label = "Z-Image"
    pipelines = ("ZImagePipeline",)
    img2img, inpaint = "ZImageImg2ImgPipeline", "ZImageInpaintPipeline"
    sigma_spacing = True
    denoiser_name = "transformer"
    flow = True
    patch = 2

    def call_plan(self, pipe, request, has_negative: bool) -> CallPlan:
        self.check_request(request)
        return CallPlan({"guidance_scale": max(0.0, request.guidance - 1)})
