"""New words for a LoRA: pivotal tuning (textual inversion beside the LoRA, as diffusers'
advanced DreamBooth LoRA script's ``--train_text_encoder_ti``).

Each new word (e.g. 'hexagon', '六边形') becomes one token of its own with a learned
embedding. Before, the word was spelled out in pieces the text encoder hardly knows, and a
LoRA had to bend the whole text encoder to read it; now the concept has its own handle, and
prompts without the word encode exactly as they did. The embeddings are saved beside the LoRA
(``pytorch_lora_weights_emb.safetensors``, ``{"clip_l": [n_words, dim]}`` as that script
writes; the words in the header) and load with diffusers' ``pipe.load_textual_inversion``
(``huajia.engine.lora.apply_new_words`` does this whenever the LoRA is used).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from huajia.errors import HuajiaError


class NewWords:
    """Adds ``words`` to a pipeline's tokenizer and text encoder and keeps every other row of
    the embedding table frozen while the new rows train."""

    def __init__(self, pipe, words: tuple[str, ...], init_word: str | None = None):
        tokenizer, self.text_encoder = pipe.tokenizer, pipe.text_encoder
        known = [w for w in words if w in tokenizer.get_vocab()]
        if known or len(set(words)) != len(words):
            raise HuajiaError(f"new words must be new and different ({', '.join(words)}); "
                              "a word the tokenizer already has as a token cannot be re-added")
        # each word starts from what its spelling meant before, or from ``init_word`` (as
        # kohya's --init_word: e.g. 'circle', a known thing the new one is closest to, so the
        # model already counts and colours it and only its outline has to be learned)
        pieces = [tokenizer(start, add_special_tokens=False).input_ids
                  for start in starting_words(words, init_word)]
        tokenizer.add_tokens(list(words))
        self.words = tuple(words)
        self.ids = tokenizer.convert_tokens_to_ids(list(words))
        self.text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        table = self.table()
        with torch.no_grad():
            for token_id, word_pieces in zip(self.ids, pieces, strict=True):
                table[token_id] = table[word_pieces].mean(dim=0)
        self.frozen = table.detach().clone()
        self.old_rows = torch.ones(len(table), dtype=torch.bool, device=table.device)
        self.old_rows[self.ids] = False
        table.requires_grad_(True)

    def table(self) -> torch.Tensor:
        return self.text_encoder.get_input_embeddings().weight

    def parameters(self) -> list[torch.Tensor]:
        return [self.table()]

    @torch.no_grad()
    def restore_old_rows(self) -> None:
        """Undo the optimizer's step on every row but the new words' (AdamW's decay and
        momentum would otherwise move them)."""
        table = self.table()  # on the device it was created on, as ``frozen`` and ``old_rows``
        table[self.old_rows] = self.frozen[self.old_rows].to(table.dtype)

    def vectors(self) -> torch.Tensor:
        return self.table()[self.ids].detach().float().cpu().clone()

    def load_vectors(self, vectors: torch.Tensor) -> None:
        with torch.no_grad():
            self.table()[self.ids] = vectors.to(self.table())

    def save(self, path: Path) -> Path:
        from safetensors.torch import save_file

        save_file({"clip_l": self.vectors().contiguous()}, path,
                  metadata={"format": "pt", "huajia_words": json.dumps(self.words)})
        return path


def starting_words(words: tuple[str, ...], init_word: str | None) -> list[str]:
    """What each new word starts from: its own spelling, the one ``init_word`` for all, or
    one of a comma-separated list per word ('circle,circles' for 'hexagon', 'hexagons': the
    plural starts plural, so 'two hexagons' reads as a count the model already draws)."""
    if not init_word:
        return list(words)
    starts = [w.strip() for w in init_word.split(",")]
    if len(starts) == 1:
        return starts * len(words)
    if len(starts) != len(words) or not all(starts):
        raise HuajiaError(f"--new-word-init '{init_word}' names {len(starts)} words for "
                          f"{len(words)} new words; give one word, or one per --new-word")
    return starts
