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
    inpaint_channels = (16, 33)  # SD3's inpainting pipeline is written for 16-channel latents
    lora_targets = ("to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj",
                    "to_add_out")  # the image and the text stream's attention
    lora_text_encoders = ("text_encoder", "text_encoder_2")  # the CLIPs, not T5
    denoiser_name = "transformer"
    flow = True
    patch = 2
    weighted = True  # on T5 (a pipeline loaded without T5 paints the words as written)
    window = 256  # the pipeline's max_sequence_length
    window_tokenizer = "tokenizer_3"  # T5's (the CLIPs' 77 are fixed)

    regions = "joint"  # thinking's regional prompts: a mask over [image, text] attention
    text_first = False

    def caption_embeds(self, pipe, caption: str):
        """A caption's CLIP-L/G and T5 tokens, as the pipeline encodes a prompt."""
        embeds, _, _, _ = pipe.encode_prompt(caption, caption, caption, device=pipe.device,
                                             do_classifier_free_guidance=False,
                                             max_sequence_length=self.window)
        return embeds, None

    def mask_processors(self, denoiser) -> dict:
        """SD3's joint attention processors ignore an attention mask: ones that apply it."""
        return {name: MaskedJointAttention() for name in denoiser.attn_processors}

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


class MaskedJointAttention:
    """diffusers' ``JointAttnProcessor2_0`` with the ``attention_mask`` it is given applied over
    the joint [image, text] sequence (thinking's regions); without one, the same attention."""

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 *args, **kwargs):
        batch, image_tokens = hidden_states.shape[0], hidden_states.shape[1]

        def heads(x: torch.Tensor, norm) -> torch.Tensor:  # (B, S, H·d) → (B, H, S, d)
            x = x.view(batch, -1, attn.heads, x.shape[-1] // attn.heads).transpose(1, 2)
            return norm(x) if norm is not None else x

        query = heads(attn.to_q(hidden_states), attn.norm_q)
        key = heads(attn.to_k(hidden_states), attn.norm_k)
        value = heads(attn.to_v(hidden_states), None)
        if encoder_hidden_states is not None:
            query = torch.cat([query, heads(attn.add_q_proj(encoder_hidden_states),
                                            attn.norm_added_q)], 2)
            key = torch.cat([key, heads(attn.add_k_proj(encoder_hidden_states),
                                        attn.norm_added_k)], 2)
            value = torch.cat([value, heads(attn.add_v_proj(encoder_hidden_states), None)], 2)
        if attention_mask is not None and attention_mask.shape[-1] != key.shape[2]:
            attention_mask = None  # an image-only attention (SD3.5's second one)
        out = torch.nn.functional.scaled_dot_product_attention(query, key, value,
                                                               attn_mask=attention_mask)
        out = out.transpose(1, 2).reshape(batch, -1, out.shape[1] * out.shape[-1]).to(query.dtype)
        image = attn.to_out[1](attn.to_out[0](out[:, :image_tokens]))
        if encoder_hidden_states is None:
            return image
        text = out[:, image_tokens:]
        return image, (text if attn.context_pre_only else attn.to_add_out(text))
