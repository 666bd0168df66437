"""PixArt-Σ: a DiT on T5 (300 tokens) with learned variance, noise prediction. Its pipeline
has no step-end callback (only the legacy per-step one), bins sizes (off: the asked size is
painted) and by default cleans captions in a way that deletes Chinese (off)."""

from __future__ import annotations

from huajia.engine.families.base import Family
from huajia.engine.t5_weights import encode_t5, even, masked_kwargs, own_encoding, trimmed


class PixArtSigma(Family):
    name = "pixart_sigma"
    label = "PixArt-Σ"
    pipelines = ("PixArtSigmaPipeline", "PixArtAlphaPipeline")
    lora_loader = "peft"  # its pipeline and transformer have no LoRA loader
    denoiser_name = "transformer"
    step_callback = False
    defaults = {"use_resolution_binning": False, "clean_caption": False}
    weighted = True
    window = 300

    regions = "batch"  # thinking's regional prompts: batched denoiser calls

    def caption_embeds(self, pipe, caption: str):
        """A caption's T5 tokens (masked as the pipeline encodes them), padding cut off."""
        return trimmed(encode_t5(pipe.tokenizer, pipe.text_encoder, caption, self.window,
                                 masked=True), self.window), None

    def prompt_kwargs(self, pipe, prompt: str, negative: str, dtype=None) -> dict:
        """Weights on T5 (engine/t5_weights), masked as the pipeline masks it."""
        if not own_encoding(pipe.tokenizer, self.window - 1, prompt, negative):
            return super().prompt_kwargs(pipe, prompt, negative, dtype)
        dtype = dtype or pipe.dtype
        encoded = even(*(encode_t5(pipe.tokenizer, pipe.text_encoder, text, self.window,
                                   masked=True) for text in (prompt, negative)))
        return masked_kwargs(*encoded, dtype)
