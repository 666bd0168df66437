"""Provenance: an invisible spread-spectrum watermark in luma, plus the PNG infotext.

The infotext is lost as soon as someone re-encodes the picture; the watermark is meant to survive
JPEG and mild resizing (``benchmarks/serving.py`` measures how far). Why not the
invisible-watermark package: its ``WatermarkEncoder``/``Decoder`` refuse pictures under 256x256
('image too small'), and the embedded model paints 128x128. Calling its DWT-DCT classes directly
on our flat-background pictures recovered only ~21-26 of 32 bits from *untouched* images at
settings that keep them invisible; at settings that read back, they shifted a flat gray
background towards beige and dotted object edges (which would also fool the shapes verifier).

The mark: a keyed ±1 pattern on a 64×64 grid, smoothly stretched over the whole picture (so it
lives at mid frequencies that JPEG keeps, and in picture-relative coordinates that resizing keeps)
and added to every channel at ±``AMPLITUDE`` levels (PSNR ≈ 40 dB). Detection resizes to 256²,
removes the picture's own content with a local-mean high-pass, and correlates with the pattern:
unmarked pictures give ρ ≈ 0 ± 0.02, so ``MIN_CORRELATION`` is far outside chance. A picture
is also read mirrored (the pattern is not symmetric, so a horizontal flip would hide it).

The key is the server's secret: ``huajia serve`` makes a random one on first start
(``DATA_DIR/watermark-key``) unless given ``--watermark-key``/``--watermark-key-file``, so a mark
nobody else can embed says "made here"; ``huajia detect`` and ``huajia generate`` take the same
key.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

AMPLITUDE = 3.0
GRID = 32
DETECT_SIDE = 256
MIN_CORRELATION = 0.12
CLIP = 3 * AMPLITUDE


def _pattern(key: str, width: int, height: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    grid = np.random.default_rng(seed).choice([-1.0, 1.0], size=(GRID, GRID)).astype(np.float32)
    stretched = Image.fromarray(grid, mode="F").resize((width, height), Image.BILINEAR)
    return np.asarray(stretched, dtype=np.float32)


def embed_watermark(image: Image.Image, key: str = "huajia") -> Image.Image:
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    mark = AMPLITUDE * _pattern(key, image.width, image.height)[..., None]
    # leave AMPLITUDE levels of headroom at both ends, so white and black carry the mark too
    squeezed = AMPLITUDE + rgb * (255.0 - 2 * AMPLITUDE) / 255.0
    return Image.fromarray(np.clip(np.rint(squeezed + mark), 0, 255).astype(np.uint8))


def _high_pass(array: np.ndarray, radius: int = 3) -> np.ndarray:
    """Array minus its (2r+1)² box mean: keeps the mark, drops the picture's smooth content."""
    width = 2 * radius + 1
    padded = np.pad(array, radius, mode="edge")
    sums = np.cumsum(np.cumsum(np.pad(padded, ((1, 0), (1, 0))), axis=0), axis=1)
    box = sums[width:, width:] - sums[:-width, width:] - sums[width:, :-width] + sums[:-width, :-width]
    return array - box / width**2


def _cells(array: np.ndarray) -> np.ndarray:
    cell = DETECT_SIDE // GRID
    return array.reshape(GRID, cell, GRID, cell).mean(axis=(1, 3)).ravel()


def watermark_correlation(image: Image.Image, key: str = "huajia") -> float:
    """Correlation between the picture's fine detail and the key's pattern (0 ≈ unmarked)."""
    luma = image.convert("L").resize((DETECT_SIDE, DETECT_SIDE), Image.BILINEAR)
    # clipping keeps object edges (large residuals, unrelated to the mark) from drowning it;
    # averaging over the pattern's cells keeps what the mark shares and cancels the rest
    residual = _cells(np.clip(_high_pass(np.asarray(luma, dtype=np.float32)), -CLIP, CLIP))
    pattern = _cells(_high_pass(_pattern(key, DETECT_SIDE, DETECT_SIDE)))
    residual = residual - residual.mean()
    denominator = float(np.linalg.norm(residual) * np.linalg.norm(pattern))
    return float(residual @ pattern / denominator) if denominator > 0 else 0.0


@dataclass(frozen=True)
class Provenance:
    made_here: bool
    watermark_score: float
    threshold: float
    infotext: str | None
    infotext_says_huajia: bool

    def to_dict(self) -> dict:
        return {"made_here": self.made_here, "watermark_score": round(self.watermark_score, 4),
                "threshold": self.threshold, "infotext": self.infotext,
                "infotext_says_huajia": self.infotext_says_huajia}


def check_provenance(image: Image.Image, key: str = "huajia") -> Provenance:
    """Was ``image`` made here? The watermark decides (read as it is and mirrored); the infotext
    (easily copied or stripped) is reported alongside. (Not ``world.verifier.verify``, a picture
    checked against a prompt.)"""
    score = max(watermark_correlation(image, key),
                watermark_correlation(ImageOps.mirror(image.convert("RGB")), key))
    text = image.info.get("parameters")
    return Provenance(score >= MIN_CORRELATION, score, MIN_CORRELATION, text,
                      bool(text) and "huajia" in str(text))


def read_key_file(path: str | Path) -> str:
    """A watermark key from a file (its first line)."""
    from huajia.errors import HuajiaError

    try:
        key = Path(path).read_text(encoding="utf-8").strip().splitlines()
    except (OSError, UnicodeDecodeError):
        raise HuajiaError(f"watermark key file '{path}' cannot be read; give the file the server "
                          "wrote (DATA_DIR/watermark-key)") from None
    if not key or not key[0].strip():
        raise HuajiaError(f"watermark key file '{path}' is empty; write the key on its first line")
    return key[0].strip()


def server_key(key: str | None, key_file: str | Path | None, data_dir: Path) -> str:
    """The key a server marks with: given, from a file, or its own (made once, kept private in
    ``data_dir/watermark-key``)."""
    if key:
        return key
    if key_file:
        return read_key_file(key_file)
    path = Path(data_dir) / "watermark-key"
    if not path.exists():
        path.write_text(secrets.token_hex(32) + "\n", encoding="utf-8")
        path.chmod(0o600)
    return read_key_file(path)


def key_digest(key: str) -> str:
    """What a cache key records of the watermark key (never the key itself)."""
    return hashlib.sha256(f"huajia-watermark:{key}".encode()).hexdigest()[:16]
