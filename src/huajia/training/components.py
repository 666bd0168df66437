"""The embedded model's parts, as real diffusers/transformers classes with small configs.

Tokenizer: byte-level BPE trained on the world's captions (English and Chinese), so any text —
including words the model never saw — maps to tokens. Text encoder: a small CLIP text
transformer. VAE: an 8x AutoencoderKL. UNet: a small UNet2DConditionModel. Scheduler: v-prediction
on a zero-terminal-SNR schedule with trailing timesteps (well defined at pure noise, so early
sampling steps do not turn prediction errors into saturated colour casts).
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import CLIPTextConfig, CLIPTextModel, PreTrainedTokenizerFast

from huajia.training.recipes import ModelSize

SPECIAL_TOKENS = ("<|pad|>", "<|startoftext|>", "<|endoftext|>")
MAX_TOKENS = 77  # as Stable Diffusion: prompts beyond this are chunked by the engine


def train_tokenizer(texts: list[str], size: ModelSize) -> PreTrainedTokenizerFast:
    """Byte-level BPE over the captions: common words become single tokens, anything else
    (a new word, a rare Chinese character) falls back to byte pieces, so nothing is [UNK]."""
    bpe = Tokenizer(models.BPE())
    # Each Chinese character stands alone (as BERT does), so merges never fuse a count with a
    # colour ('两个红'): every character is one token, composable like an English word.
    bpe.normalizer = normalizers.Sequence([
        normalizers.NFKC(), normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=True,
                                                       strip_accents=False, lowercase=True)])
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=size.vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    bpe.train_from_iterator(texts, trainer=trainer)
    bos, eos = SPECIAL_TOKENS[1], SPECIAL_TOKENS[2]
    bpe.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", special_tokens=[(bos, bpe.token_to_id(bos)),
                                                  (eos, bpe.token_to_id(eos))])
    return PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=bos, eos_token=eos,
                                   pad_token=SPECIAL_TOKENS[0], model_max_length=MAX_TOKENS)


def build_text_encoder(tokenizer: PreTrainedTokenizerFast, size: ModelSize) -> CLIPTextModel:
    config = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=size.text_width,
        intermediate_size=size.text_width * 3, num_hidden_layers=size.text_layers,
        num_attention_heads=4, max_position_embeddings=MAX_TOKENS, projection_dim=size.text_width,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id)
    return CLIPTextModel(config)


def build_vae(size: ModelSize) -> AutoencoderKL:
    blocks = len(size.vae_channels)
    return AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * blocks,
        up_block_types=("UpDecoderBlock2D",) * blocks, block_out_channels=size.vae_channels,
        layers_per_block=1, latent_channels=size.latent_channels, norm_num_groups=8,
        sample_size=size.image_side)


def build_unet(size: ModelSize) -> UNet2DConditionModel:
    latent_side = size.image_side // 2 ** (len(size.vae_channels) - 1)
    return UNet2DConditionModel(
        sample_size=latent_side, in_channels=size.latent_channels,
        out_channels=size.latent_channels, layers_per_block=size.unet_layers_per_block,
        block_out_channels=size.unet_channels,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=size.text_width, attention_head_dim=size.unet_heads,
        norm_num_groups=32)


def build_scheduler() -> DDIMScheduler:
    return DDIMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear",
                         beta_start=0.00085, beta_end=0.012, prediction_type="v_prediction",
                         rescale_betas_zero_snr=True, timestep_spacing="trailing",
                         clip_sample=False, set_alpha_to_one=False, steps_offset=1)


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, folder: Path) -> None:
    tokenizer.save_pretrained(str(folder))


def snr_loss_weights(alphas_cumprod: torch.Tensor, v_prediction: bool, gamma: float,
                     floor: float = 0.0) -> torch.Tensor:
    """Per-timestep loss weights: Min-SNR-γ (Hang et al. 2023) with an optional floor.

    In x0 terms the weight is clamp(SNR, floor, γ): γ caps the nearly clean steps; a floor of 1
    keeps the noisiest steps (where the layout is decided) at full weight instead of ~SNR ≈ 0.
    Returned in the form for the model's prediction type (v or ε)."""
    snr = alphas_cumprod / (1 - alphas_cumprod).clamp(min=1e-8)
    x0_weight = snr.clamp(min=floor, max=max(gamma, floor))
    return x0_weight / (snr + 1) if v_prediction else x0_weight / snr.clamp(min=1e-8)


@torch.no_grad()
def ema_update(averages: list[torch.Tensor], tensors: list[torch.Tensor], decay: float,
               step: int) -> None:
    """Move each average towards its tensor; the decay warms up as in diffusers' EMAModel,
    so the first steps do not pin the average to the starting weights."""
    decay = min(decay, (1 + step) / (10 + step))
    for average, tensor in zip(averages, tensors, strict=True):
        average.mul_(decay).add_(tensor.detach(), alpha=1 - decay)


def make_portable(model_dir: str | Path) -> None:
    """Make a saved pipeline folder load the same way everywhere: the tokenizer declared as
    ``PreTrainedTokenizerFast`` (transformers 4 and 5; 5 writes its own ``TokenizersBackend``),
    and the text encoder's dtype as float32, so a bare ``from_pretrained(...)`` gives fp32
    throughout (transformers 5 would otherwise keep the fp16 of the stored weights while
    diffusers loads the UNet and VAE in fp32) and ``torch_dtype=float16`` still gives fp16.
    The text encoder's weights get transformers 4's names (``text_model.…``), which 5 reads
    too; saved under 5's names, transformers 4 would silently start from random weights."""
    import json

    from safetensors.torch import load_file, save_file

    model_dir = Path(model_dir)
    weights = model_dir / "text_encoder" / "model.safetensors"
    if weights.is_file():
        state = load_file(weights)
        if not all(key.startswith("text_model.") for key in state):
            save_file({k if k.startswith("text_model.") else f"text_model.{k}": v
                       for k, v in state.items()}, weights, metadata={"format": "pt"})
    edits = {model_dir / "model_index.json": lambda c: c.update(
                 tokenizer=["transformers", "PreTrainedTokenizerFast"]),
             model_dir / "tokenizer" / "tokenizer_config.json": lambda c: c.update(
                 tokenizer_class="PreTrainedTokenizerFast"),
             model_dir / "text_encoder" / "config.json": lambda c: c.update(
                 dtype="float32", torch_dtype="float32")}
    for path, edit in edits.items():
        if path.is_file():
            config = json.loads(path.read_text(encoding="utf-8"))
            edit(config)
            path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n",
                            encoding="utf-8")

