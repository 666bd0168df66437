"""Sana: a linear-attention DiT on Gemma 2, a deep-compression autoencoder (32x), flow
matching through DPM-Solver on flow sigmas. Sizes are what the request asks (the pipeline's
resolution binning is off, so a 1024x768 request paints 1024x768). No image-to-image or
inpainting pipeline: edits, variations and the hires fix take huajia's own partial denoise."""

from __future__ import annotations

from huajia.engine.families.base import Family


class Sana(Family):
    name = "sana"
    label = "Sana"
    pipelines = ("SanaPipeline",)
    denoiser_name = "transformer"
    flow = True
    defaults = {"use_resolution_binning": False}

    def vae_encode(self, vae, pixels):
        return vae.encode(pixels).latent  # the DC-AE encodes to latents, not a distribution
