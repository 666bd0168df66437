"""The training recipes' settings: ``BaseRecipe`` (the embedded model from scratch),
``LoraRecipe`` (a LoRA) and the model's ``ModelSize``, each setting declared once with its
name, default, unit and help (``huajia.params``) for ``huajia train base|lora``, the Python API
and the records. (``RLRecipe`` lives in ``training/rl/recipe.py``.)

Free of torch, so the command line, which builds its options from these, starts in a blink.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from huajia.engine.loading import check_family, family_param
from huajia.errors import HuajiaError
from huajia.params import check, param

LR_SCHEDULERS = ("constant", "constant_with_warmup", "cosine", "linear")


@dataclass(frozen=True)
class ModelSize:
    """Every size knob of the embedded model (recorded in the model card)."""

    image_side: int = 128
    vocab_size: int = 2048
    text_width: int = 256
    text_layers: int = 3
    vae_channels: tuple[int, ...] = (16, 32, 64, 128)
    latent_channels: int = 4
    unet_channels: tuple[int, ...] = (64, 128, 256)
    unet_layers_per_block: int = 1
    unet_heads: int = 8

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class BaseRecipe:
    """How ``huajia train base`` trains the embedded model (the model's shape, ``size``, is not
    an option: the model card records it)."""

    size: ModelSize = field(default_factory=ModelSize)
    seed: int = param(0, help="Seed of the scenes, the first weights and the batches.")
    n_scenes: int = param(24_000, help="Distinct training scenes.", low=1, aliases=("scenes",))
    vae_steps: int = param(3_000, help="VAE training steps.", low=0)
    vae_batch: int = param(16, help="VAE batch size.", low=1)
    vae_crop: int = param(64, help="Side of the VAE's training crops.", unit="pixels", low=8)
    vae_lr: float = param(6e-4, help="Peak learning rate of the VAE.", low=0.0)
    unet_steps: int = param(2_000, help="UNet + text-encoder training steps.", low=0)
    unet_batch: int = param(32, help="UNet batch size.", low=1)
    unet_lr: float = param(4e-4, help="Peak learning rate of the UNet + text encoder.", low=0.0)
    warmup: int = param(100, help="Steps of learning-rate warm-up.", low=0)
    caption_dropout: float = param(0.1, help="Chance a caption is left empty (what classifier-"
                                   "free guidance needs).", low=0.0, high=1.0)
    # captions that name no colour (see world.dataset.described_spec)
    colour_drop: float = param(0.3, help="Chance a caption names no colour.", low=0.0, high=1.0)
    # a fine-tune aimed at relations: more scenes that state where one kind is from another
    relation_share: float = param(0.0, help="Chance a training scene is redrawn "
                                  "until it states a relation (0: about 36% do).", low=0.0, high=1.0)
    # pairs that differ only in the relation word (and so in where things are): the gradient of
    # a pair is what that word should change
    mirror_pairs: bool = param(False, help="Train on pairs: each scene beside its mirror image "
                               "with its relation words turned round, one caption frame, noise "
                               "and step for both.")
    min_snr_gamma: float = param(5.0, help="Min-SNR-γ loss weights (0: plain MSE).", low=0.0)
    min_snr_floor: float = param(1.0, help="The smallest Min-SNR weight (see "
                                 "components.snr_loss_weights).", low=0.0)
    checkpoint_every: int = param(200, help="Save a checkpoint (what --resume continues) every "
                                  "K steps.", low=1)
    # Fine-tune: start the UNet + text encoder from this pipeline folder and keep its tokenizer
    # and VAE (no tokenizer or VAE stage); None trains everything from scratch.
    init_from: str | None = param(None, help="Fine-tune: start from this pipeline folder (or "
                                  "'embedded') and keep its tokenizer and VAE.")

    def __post_init__(self) -> None:
        check(self)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class LoraRecipe:
    """A LoRA training run. The defaults are the best recipe measured on the embedded model
    (docs/lora.md: LoCon on attention and convolutions, rank 16, alpha 16, lr 1e-3, a
    text-encoder LoRA at 3e-4); ``benchmarks/lora_concept.py`` takes its defaults from here.
    Data with alpha masks should add ``mask_weight=3`` (the best measured masked loss)."""

    data: str = param(help="Imagefolder (file_name + text[, text_zh]) or a Data-Juicer "
                      "export (result.jsonl).")
    out: str = param(help="Where the LoRA, samples and loss curve go.")
    model: str = param("embedded", help="Base model: embedded, a diffusers folder or a hub id.")
    family: str | None = family_param()
    rank: int = param(16, help="network_dim.", low=1)
    alpha: float = param(16.0, help="network_alpha.")
    steps: int = param(800, help="max_train_steps.", low=1)
    lr: float = param(1e-3, help="learning_rate.")
    batch: int = param(8, help="train_batch_size.", low=1)
    precision: str = param("fp32", help="mixed_precision.", choices=("fp32", "bf16", "fp16"))
    gradient_checkpointing: bool = param(False, help="Recompute activations in the backward "
                                         "pass (less memory, more time).")
    # None: where the family's text encoders are CLIP (SD 1.x/2.x, SDXL, SD3, FLUX.1); True on
    # T5, ChatGLM, Gemma or Qwen alone is refused in one line
    train_text_encoder: bool | None = param(None, help="Also a LoRA on the text encoders "
                                            "(omitted: where they are CLIP).",
                                            aliases=("text_encoder",), cli_type=bool)
    seed: int = param(0, help="Seed of the batches, the noise and the first weights.")
    sample_every: int = param(100, help="Sample pictures every K steps (0: never).", low=0)
    sample_prompts: tuple[str, ...] = param((), help="Prompts of the samples (repeatable).",
                                            aliases=("sample_prompt",))
    caption_dropout: float = param(0.05, help="Chance a caption is left empty.", low=0.0,
                                   high=1.0)
    # kohya's reg images / DreamBooth prior preservation: pictures of what the model already
    # knows, half of every batch, so the LoRA teaches the new concept without forgetting
    reg_data: str | None = param(None, help="Imagefolder of what the model already knows (half "
                                 "of each batch) so it does not forget.")
    prior_loss_weight: float = param(1.0, help="Weight of the --reg-data loss.", low=0.0)
    # What the reg half is pulled towards: "images" (DreamBooth: the reg pictures' own noise)
    # or "base" (the frozen base model's prediction on them, adapters off): it penalises any
    # change of the base model's behaviour on old prompts, with far less variance.
    prior_target: str = param("images", help="What the --reg-data half is pulled towards: "
                              "images (DreamBooth) or base (the frozen model's prediction).",
                              choices=("images", "base"))
    # Min-SNR-γ loss weights (as kohya's --min_snr_gamma; 0: plain MSE). The very noisy and
    # the nearly clean timesteps carry little signal and much variance, which otherwise
    # drowns a small dataset's gradient.
    min_snr_gamma: float = param(5.0, help="Min-SNR-γ loss weights (0: plain MSE).", low=0.0)
    text_encoder_lr: float | None = param(3e-4, help="Text-encoder LoRA lr (omitted: --lr).")
    conv_rank: int = param(16, help="LoCon conv_dim: also the UNet ResNet convs (0: attention "
                           "only).", low=0)
    conv_alpha: float = param(16.0, help="LoCon conv_alpha.")
    # as kohya's --lr_scheduler / --lr_warmup_steps (diffusers' get_scheduler); constant by
    # default: cosine did no better on the hexagon benchmark (README)
    lr_scheduler: str = param("constant", help="Learning-rate schedule.", choices=LR_SCHEDULERS)
    lr_warmup_steps: int = param(0, help="Steps of lr warm-up.", low=0)
    # pivotal tuning: these words (e.g. "hexagon", "六边形") become new tokens with learned
    # embeddings beside the LoRA (training/new_words.py), at new_word_lr (None: lr)
    new_words: tuple[str, ...] = param((), help="Pivotal tuning: words that become new tokens "
                                       "with learned embeddings (repeatable).")
    new_word_lr: float | None = param(None, help="Learning rate of the new words (omitted: "
                                      "--lr).")
    new_word_init: str | None = param(None, help="Start the new words from these words, "
                                      "comma-separated (kohya's --init_word).")
    # kohya's masked loss with alpha masks: an image's alpha channel marks its subject, whose
    # pixels weigh mask_weight times the rest (1: off). A small new shape is a few latent
    # pixels of each picture; unweighted, the background's error drowns its gradient.
    mask_weight: float = param(1.0, help="Masked loss: pixels an image's alpha channel marks "
                               "weigh this much more (1: off; 3 did best).")
    # EMA of the adapter weights (as diffusers' --use_ema; 0: off): the saved LoRA is the
    # average of the last ~1/(1-decay) steps, not one noisy iterate of a constant-lr run
    ema_decay: float = param(0.0, help="EMA of the adapter weights (0: off).")
    # the pictures: at this side (0: the model's native size), squashed to a square or, with
    # center_crop, scaled to cover it and cropped at the centre (DiffSynth's --center_crop)
    resolution: int = param(0, help="Training side (0: the model's native size).",
                            unit="pixels", low=0)
    center_crop: bool = param(False, help="Scale to cover the square and crop its centre "
                              "(else squash to it).")
    buckets: bool = param(False, help="Aspect-ratio buckets: each picture is cropped to the "
                          "size of nearest aspect among sizes of about --resolution² pixels "
                          "(sides multiples of the family's, up to 2:1); a batch holds one size.")
    vae: str | None = param(None, help="A VAE folder that replaces the model's (e.g. the SDXL "
                            "fp16-fix VAE).")
    # flow-matching families: diffusers.training_utils' σ density and loss weighting
    timestep_density: str = param("logit_normal", help="Flow models: how σ is drawn.",
                                  choices=("logit_normal", "uniform", "mode", "cosmap"))
    loss_weighting: str = param("none", help="Flow models: loss weight per σ.",
                                choices=("none", "sigma_sqrt", "cosmap"))

    def __post_init__(self) -> None:
        if self.lr_scheduler not in LR_SCHEDULERS:
            raise HuajiaError(f"lr scheduler '{self.lr_scheduler}' is unknown; use one of "
                              f"{', '.join(LR_SCHEDULERS)}")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise HuajiaError(f"precision '{self.precision}' is unknown; use fp32, bf16 or fp16")
        if self.buckets and (self.center_crop or self.reg_data):
            raise HuajiaError("--buckets crops each picture to its own size and takes no "
                              "--reg-data yet; drop --center-crop and --reg-data, or --buckets")
        if self.prior_target not in ("images", "base"):
            raise HuajiaError(f"prior target '{self.prior_target}' is unknown; use images or base")
        if self.rank < 1 or self.steps < 1 or self.conv_rank < 0:
            raise HuajiaError("rank and steps must be at least 1 (conv_rank at least 0)")
        if self.mask_weight < 1 or not 0 <= self.ema_decay < 1:
            raise HuajiaError("mask weight must be at least 1 and EMA decay in [0, 1)")
        check_family(self.family)
        check(self)
