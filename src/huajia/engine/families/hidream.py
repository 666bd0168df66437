"""HiDream-I1: a mixture-of-experts DiT on two CLIPs, T5 and Llama 3.1, flow matching. Its
pipeline paints at the area of its default size (1024x1024) whatever size is asked, keeping
the aspect ratio; huajia paints the asked size by giving the pipeline that area for the call."""

from __future__ import annotations

from contextlib import contextmanager

from huajia.engine.families.base import Family


class HiDream(Family):
    name = "hidream"
    label = "HiDream-I1"
    pipelines = ("HiDreamImagePipeline",)
    lora_targets = ("to_q", "to_k", "to_v", "to_out", "to_q_t", "to_k_t", "to_v_t", "to_out_t")
    denoiser_name = "transformer"
    flow = True
    patch = 2

    @contextmanager
    def sized(self, pipe, size: tuple[int, int]):
        before = pipe.default_sample_size
        pipe.default_sample_size = round((size[0] * size[1]) ** 0.5 / pipe.vae_scale_factor)
        try:
            yield
        finally:
            pipe.default_sample_size = before
