"""Stable Diffusion 3/3.5: an MMDiT on CLIP-L, CLIP-G and T5, flow matching with a fixed
shift; classifier-free guidance as in SD. Weights and BREAK act on the T5 tokens; the CLIP
part (77 tokens and the pooled vector) encodes the words as written."""

from __future__ import annotations

import torch

from huajia.engine.families.base import Family
from huajia.engine.prompt_weights import plain_text
from huajia.engine.t5_weights import encode_t5, even, own_encoding


class StableDiffusion3(Family):
    name = "sd3"
    label = "Stable Diffusion 3"
    pipelines = ("StableDiffusion3Pipeline",)
    img2img, inpaint = "StableDiffusion3Img2ImgPipeline", "StableDiffusion3InpaintPipeline"
    lora_targets = ("to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj",
                    "to_add_out")  # the image and the text stream's attention
    lora_text_encoders = ("text_encoder", "text_encoder_2")  # the CLIPs, not T5
    denoiser_name = "transformer"
    flow = True
    patch = 2
    weighted = True  # on T5 (a pipeline loaded without T5 paints the words as written)
    window = 256  # the pipeline's max_sequence_length

    def prompt_kwargs(self, pipe, prompt: str, negative: str, dtype=None) -> dict:
        if pipe.text_encoder_3 is None or \
                not own_encoding(pipe.tokenizer_3, self.window - 1, prompt, negative):
            return super().prompt_kwargs(pipe, prompt, negative, dtype)
        dtype = dtype or pipe.dtype
        words, negative_words = plain_text(prompt), plain_text(negative)
        embeds, negative_embeds, pooled, negative_pooled = pipe.encode_prompt(
            words, words, words, device=pipe.device, negative_prompt=negative_words,
            negative_prompt_2=negative_words, negative_prompt_3=negative_words,
            max_sequence_length=self.window)
        clip = embeds.shape[1] - self.window  # the CLIP tokens come first
        t5, negative_t5 = even(*(encode_t5(pipe.tokenizer_3, pipe.text_encoder_3, text,
                                           self.window, masked=False)
                                 for text in (prompt, negative)))
        return {"prompt_embeds": torch.cat([embeds[:, :clip], t5.embeds], 1).to(dtype),
                "negative_prompt_embeds": torch.cat([negative_embeds[:, :clip],
                                                     negative_t5.embeds], 1).to(dtype),
                "pooled_prompt_embeds": pooled.to(dtype),
                "negative_pooled_prompt_embeds": negative_pooled.to(dtype)}
