"""Tokenizers made here, in a second, for the tiny family fixtures (no hub): each is the real
transformers (or diffusers) class of its family, built on a vocabulary trained with the
``tokenizers`` library (or ``sentencepiece`` for ChatGLM) on a few English and Chinese prompts
plus the fixed texts the pipelines wrap prompts in (system prompts, templates), so those come
out as whole words the way they do with the real vocabularies."""

from __future__ import annotations

import functools
import itertools
import json
import math
import string
import tempfile
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

EN = ["a red circle", "two red circles left of a blue square", "a blue square",
      "a green triangle above a yellow star", "three purple squares below an orange circle",
      "a striped circle and a dotted square", "a photo of a cat", "a castle at dusk",
      "cyberpunk city at night, neon", "ugly, blurry, low quality", "bad quality, worst quality",
      "a painting of a squirrel eating a burger", "on a beige background", "one big small shape"]
# Chinese as words (the trainers see them apart, so no merge fuses a phrase into one token;
# prompts write them together and tokenize into these words).
ZH = ["两个 红色 圆形", "一个 红色 圆形", "一个 蓝色 正方形 左边 有 两个 红色 圆形",
      "一个 绿色 三角形 在 一个 红色 圆形 上面", "三个 紫色 正方形 在 橙色 圆形 下面", "黄色 星形",
      "条纹 圆形 和 点状 正方形", "猫 的 照片", "黄昏 的 城堡", "夜晚 的 赛博朋克 城市",
      "模糊 ， 低 质量 ， 丑陋", "米色 背景 上 的 大小 形状", "四 五 六 七 八 九 十"]

# Fixed texts the pipelines put around a prompt, so they tokenize as whole words.
QWEN_IMAGE_SYSTEM = ("Describe the image by detailing the color, shape, size, texture, quantity, "
                     "text, spatial relationships of the objects and background:")
LUMINA2_SYSTEM = ("You are an assistant designed to generate superior images with the superior "
                  "degree of image-text alignment based on textual prompts or user prompts. "
                  "<Prompt Start> ")


def _sana_instruction() -> list[str]:
    import inspect

    from diffusers import SanaPipeline

    return list(inspect.signature(SanaPipeline.__call__).parameters[
        "complex_human_instruction"].default)


def corpus(*extra: str) -> list[str]:
    return (EN + ZH + list(extra)) * 3


def _model_json(tokenizer: Tokenizer) -> dict:
    return json.loads(tokenizer.to_str())["model"]


def _merges(model: dict) -> list[tuple[str, str]]:
    return [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]


# ---------------------------------------------------------------------------------------- CLIP

@functools.cache
def _clip_vocab() -> tuple[dict, list[tuple[str, str]]]:
    """CLIP's vocabulary layout, small: the 256 byte symbols, the same with ``</w>`` (a word's
    last symbol), the merges' tokens, then <|startoftext|> and <|endoftext|>; so any text (中文
    too) has tokens. The merges are learnt here on the corpus split by CLIP's own normalizer
    and pre-tokenizer (a plain loop: the BPE trainer breaks ties in hash order with ``</w>``)."""
    from collections import Counter

    from transformers import CLIPTokenizer

    backend = CLIPTokenizer().backend_tokenizer  # CLIP's pipeline, on an empty vocabulary
    words = Counter(word for text in corpus() for word, _ in
                    backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(text)))
    symbols = {word: [*word[:-1], word[-1] + "</w>"] for word in words}
    merges: list[tuple[str, str]] = []
    while len(merges) < 300:
        pairs: Counter = Counter()
        for word, parts in symbols.items():
            for pair in itertools.pairwise(parts):
                pairs[pair] += words[word]
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        for parts in symbols.values():
            i = 0
            while i < len(parts) - 1:
                if (parts[i], parts[i + 1]) == best:
                    parts[i:i + 2] = [parts[i] + parts[i + 1]]
                i += 1
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens = alphabet + [s + "</w>" for s in alphabet] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(dict.fromkeys(tokens))}, merges


def clip_tokenizer(max_length: int = 77):
    """transformers' ``CLIPTokenizer`` (pad = eos = ``<|endoftext|>`` as in SD3's and Flux's)."""
    from transformers import CLIPTokenizer

    vocab, merges = _clip_vocab()
    return CLIPTokenizer(vocab=dict(vocab), merges=list(merges), model_max_length=max_length)


# ------------------------------------------------------------------------------------------ T5

@functools.cache
def _t5_vocab() -> list[tuple[str, float]]:
    """A Unigram with T5's pre-tokenizer: <pad> 0, </s> 1, <unk> 2 as in T5; ASCII and every
    character of the corpus (the shapes world's Chinese too) are pieces, others are <unk> (T5's
    own vocabulary has next to no Chinese)."""
    unigram = Tokenizer(models.Unigram())
    unigram.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)])
    texts = corpus(" ".join(string.ascii_letters + string.digits + string.punctuation))
    unigram.train_from_iterator(texts, trainers.UnigramTrainer(
        vocab_size=500, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>",
        show_progress=False))
    # The trainer's pieces are the same every run, but not its scores (float noise, and tied
    # characters numbered in hash order): score each piece by its own log frequency in the
    # corpus's words instead, so ids and segmentations are the same every run.
    words = ["▁" + word for text in texts for word in text.split()]
    pieces = [piece for piece, _ in _model_json(unigram)["vocab"][3:]]
    counts = {piece: max(sum(word.count(piece) for word in words), 1) for piece in pieces}
    total = sum(counts.values())
    scored = [(piece, round(math.log(counts[piece] / total), 6)) for piece in pieces]
    return [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + sorted(
        scored, key=lambda p: (-p[1], p[0]))


def t5_tokenizer(max_length: int = 512):
    from transformers import T5TokenizerFast

    vocab = _t5_vocab()
    assert [p for p, _ in vocab[:3]] == ["<pad>", "</s>", "<unk>"], vocab[:3]
    return T5TokenizerFast(vocab=list(vocab), extra_ids=0, model_max_length=max_length)


# --------------------------------------------------------------------------------------- Gemma

GEMMA_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]


@functools.cache
def _gemma_vocab() -> tuple[dict, list[tuple[str, str]]]:
    """A BPE for Gemma's pipeline (spaces as ▁) with byte fallback: <0x00>..<0xFF> are in the
    vocabulary, so a character it never saw is its UTF-8 bytes, never <unk>. Trained split at
    spaces, as sentencepiece trains, so no merge crosses a word."""
    bpe = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>", fuse_unk=True))
    bpe.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never")
    bpe.train_from_iterator(corpus(*_sana_instruction(), LUMINA2_SYSTEM), trainers.BpeTrainer(
        vocab_size=900, special_tokens=GEMMA_SPECIALS, show_progress=False, max_token_length=16))
    model = _model_json(bpe)
    vocab = {token: i for i, token in enumerate(GEMMA_SPECIALS)}
    vocab.update({f"<0x{b:02X}>": len(vocab) + b for b in range(256)})
    for token in sorted(model["vocab"], key=model["vocab"].get):
        vocab.setdefault(token, len(vocab))
    return vocab, _merges(model)


def gemma_tokenizer(max_length: int = 2048):
    from transformers import GemmaTokenizerFast

    vocab, merges = _gemma_vocab()
    return GemmaTokenizerFast(vocab=dict(vocab), merges=list(merges), model_max_length=max_length)


# ----------------------------------------------------------------------- Qwen2 / Llama-3 (BPE)

QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>",
                 "<|vision_end|>", "<|image_pad|>", "<|video_pad|>", "<think>", "</think>"]
# Qwen3's template, cut to what a text-only prompt uses (enable_thinking=False adds the empty
# think block, as Qwen3's own template does; Z-Image asks for enable_thinking=True: none).
QWEN3_CHAT_TEMPLATE = (
    "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content"
    " + '<|im_end|>\\n' }}{%- endfor %}{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}{%- if enable_thinking is defined and enable_thinking is"
    " false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}{%- endif %}")


@functools.cache
def _byte_level_vocab() -> tuple[dict, list[tuple[str, str]]]:
    """A byte-level BPE with Qwen2's pre-tokenizer (Llama 3's is the same regex family): all
    256 byte symbols are tokens, so any text has tokens; the template's words are whole."""
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    template = f"system\n{QWEN_IMAGE_SYSTEM}\nuser\n\nassistant\n"
    bpe.train_from_iterator(corpus(*[template] * 5, *_sana_instruction()), trainers.BpeTrainer(
        vocab_size=1000, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    model = _model_json(bpe)
    return dict(model["vocab"]), _merges(model)


def qwen2_tokenizer(max_length: int = 32768):
    """transformers' ``Qwen2TokenizerFast`` with the ChatML specials and Qwen3's chat template."""
    from tokenizers import AddedToken
    from transformers import Qwen2TokenizerFast

    vocab, merges = _byte_level_vocab()
    tokenizer = Qwen2TokenizerFast(vocab=dict(vocab), merges=list(merges),
                                   model_max_length=max_length)
    tokenizer.add_special_tokens({"additional_special_tokens": [
        AddedToken(t, special=True, normalized=False) for t in QWEN_SPECIALS[1:]]})
    tokenizer.chat_template = QWEN3_CHAT_TEMPLATE
    return tokenizer


def llama3_tokenizer(max_length: int = 128):
    """A ``PreTrainedTokenizerFast`` like Llama 3.1's (byte-level BPE, <|begin_of_text|> first)."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    vocab, merges = _byte_level_vocab()
    bpe = Tokenizer(models.BPE(vocab=dict(vocab), merges=list(merges)))
    bpe.normalizer = normalizers.NFC()
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    bpe.decoder = decoders.ByteLevel()
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
    bpe.add_special_tokens(specials)
    bos = specials[0]
    bpe.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bpe.token_to_id(bos))])
    return PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=bos, eos_token=specials[1],
                                   model_max_length=max_length)


# ------------------------------------------------------------------------------------- ChatGLM

@functools.cache
def _chatglm_model_file() -> bytes:
    """A tiny sentencepiece model (ChatGLM3's kind: BPE, byte fallback, <unk> <s> </s>)."""
    import io

    import sentencepiece as spm

    model = io.BytesIO()  # trained from an iterator into memory: no file paths in the model
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus()), model_writer=model, vocab_size=400, model_type="bpe",
        byte_fallback=True, character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        minloglevel=2, num_threads=1)
    return model.getvalue()


@functools.cache
def _chatglm_folder() -> Path:
    """Where the model file lives while this process runs: ChatGLMTokenizer reads it when made
    and again in save_pretrained (it copies the file), so it must outlive the tokenizer."""
    import atexit
    import shutil

    folder = Path(tempfile.mkdtemp(prefix="tiny-chatglm-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    (folder / "tokenizer.model").write_bytes(_chatglm_model_file())
    return folder


def chatglm_tokenizer():
    """diffusers' ``ChatGLMTokenizer`` (Kolors) on the tiny sentencepiece model."""
    from diffusers.pipelines.kolors import ChatGLMTokenizer

    return ChatGLMTokenizer(str(_chatglm_folder() / "tokenizer.model"))
