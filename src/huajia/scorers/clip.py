"""CLIPScore of an image and a text with any local transformers CLIP checkpoint."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from huajia.errors import HuajiaError


class ClipScorer:
    """``score(image, text)`` = 2.5 · max(cos, 0) · 100, capped at 100 (CLIPScore)."""

    def __init__(self, checkpoint: str | Path):
        from transformers import AutoProcessor, CLIPModel

        if not Path(checkpoint).is_dir():
            raise HuajiaError(f"CLIP checkpoint '{checkpoint}' is not a folder; pass a local "
                              "transformers CLIP directory (--clip-model)")
        self.model = CLIPModel.from_pretrained(checkpoint).eval()
        self.processor = AutoProcessor.from_pretrained(checkpoint)

    def score(self, image: Image.Image, text: str) -> float:
        import torch

        inputs = self.processor(text=[text], images=[image], return_tensors="pt", padding=True)
        with torch.no_grad():
            out = self.model(**inputs)
        cos = torch.nn.functional.cosine_similarity(out.image_embeds, out.text_embeds).item()
        return min(100.0, 250.0 * max(cos, 0.0))
