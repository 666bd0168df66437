"""HiDream-I1: a mixture-of-experts DiT on two CLIPs, T5 and Llama 3.1, flow matching. Its
pipeline paints at the area of its default size (1024x1024) whatever size is asked, keeping
the aspect ratio; huajia paints the asked size by giving the pipeline that area for the call.

A1111 weights and BREAK act on T5's states (engine/t5_weights) and on every layer of Llama
3.1's (engine/template_weights) the ComfyUI way, each token moved from the empty prompt's
state at its position by its weight; chunks of 128 tokens are encoded apart and concatenated.
The two CLIPs' pooled vectors are the pipeline's own, of the words without weights."""

from __future__ import annotations

from contextlib import contextmanager

import torch

from huajia.engine.families.base import Family
from huajia.engine.prompt_weights import plain_text
from huajia.engine.t5_weights import encode_t5, even, own_encoding
from huajia.engine.template_weights import encode_chunks, text_chunks


class HiDream(Family):
    name = "hidream"
    label = "HiDream-I1"
    pipelines = ("HiDreamImagePipeline",)
    lora_targets = ("to_q", "to_k", "to_v", "to_out", "to_q_t", "to_k_t", "to_v_t", "to_out_t")
    denoiser_name = "transformer"
    flow = True
    patch = 2
    weighted = True
    window = 128  # the pipeline's max_sequence_length, for T5 and for Llama
    window_tokenizer = "tokenizer_4"  # Llama's, whose every layer the transformer reads

    def largest_oblong_area(self, pipe) -> int:
        # a picture that is not square is padded to the transformer's max_seq patches
        config = self.denoiser(pipe).config
        return config.max_resolution[0] * config.max_resolution[1] * self.vae_scale(pipe) ** 2

    def training_prediction(self, pipe, output, latents):
        """The pipeline negates the transformer's output (it predicts x0 − ε)."""
        return -super().training_prediction(pipe, output, latents)

    def prompt_kwargs(self, pipe, prompt: str, negative: str, dtype=None) -> dict:
        if not any(own_encoding(tokenizer, self.window - 1, prompt, negative)
                   for tokenizer in (pipe.tokenizer_3, pipe.tokenizer_4)):
            return super().prompt_kwargs(pipe, prompt, negative, dtype)
        dtype = dtype or pipe.dtype
        t5 = even(*(self.encode_t5(pipe, text) for text in (prompt, negative)))
        llama = _even_layers(*(self.encode_llama(pipe, text) for text in (prompt, negative)))
        kwargs = {"negative_prompt": None}  # the embeddings stand for it
        for key, text, t5_embeds, llama_embeds in zip(("", "negative_"), (prompt, negative), t5,
                                                      llama, strict=True):
            kwargs[f"{key}pooled_prompt_embeds"] = self.pooled(pipe, text).to(dtype)
            kwargs[f"{key}prompt_embeds_t5"] = t5_embeds.embeds.to(dtype)
            kwargs[f"{key}prompt_embeds_llama3"] = llama_embeds.to(dtype)
        return kwargs

    @torch.no_grad()
    def pooled(self, pipe, prompt: str) -> torch.Tensor:
        """The two CLIPs' pooled vectors, as the pipeline makes them, of the plain words."""
        words = plain_text(prompt)
        return torch.cat([pipe._get_clip_prompt_embeds(tokenizer, encoder, words, self.window,
                                                       encoder.device, encoder.dtype)
                          for tokenizer, encoder in ((pipe.tokenizer, pipe.text_encoder),
                                                     (pipe.tokenizer_2, pipe.text_encoder_2))],
                         dim=-1)

    def encode_t5(self, pipe, prompt: str):
        """T5's states with the weights, as the pipeline's ``_get_t5_prompt_embeds``."""
        window = min(self.window, pipe.tokenizer_3.model_max_length)
        return encode_t5(pipe.tokenizer_3, pipe.text_encoder_3, prompt, window, masked=True)

    def encode_llama(self, pipe, prompt: str) -> torch.Tensor:
        """Every layer of Llama's states with the weights, (layers, 1, chunks * 128, D), as
        the pipeline's ``_get_llama3_prompt_embeds``."""
        tokenizer, encoder = pipe.tokenizer_4, pipe.text_encoder_4
        window = min(self.window, tokenizer.model_max_length)

        def encode(text: str, _length=None):  # padded to the window already
            inputs = tokenizer(text, padding="max_length", max_length=window, truncation=True,
                               add_special_tokens=True, return_offsets_mapping=True,
                               return_tensors="pt")
            mask = inputs.attention_mask.to(encoder.device)
            output = encoder(inputs.input_ids.to(encoder.device), attention_mask=mask,
                             output_hidden_states=True, output_attentions=True)
            return (torch.stack(output.hidden_states[1:], dim=0), mask,
                    inputs.offset_mapping[0].tolist())

        chunks = text_chunks(tokenizer, prompt, window - 1)
        return encode_chunks(chunks, "", encode, dim=2).embeds

    @contextmanager
    def sized(self, pipe, size: tuple[int, int]):
        before = pipe.default_sample_size
        pipe.default_sample_size = round((size[0] * size[1]) ** 0.5 / pipe.vae_scale_factor)
        try:
            yield
        finally:
            pipe.default_sample_size = before


def _even_layers(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two stacks of Llama layers at one length: the shorter gets copies of its last row."""
    length = max(a.shape[2], b.shape[2])
    return tuple(torch.cat([x, x[:, :, -1:].expand(-1, -1, length - x.shape[2], -1)], dim=2)
                 for x in (a, b))
