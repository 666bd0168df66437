"""nudenet's NSFW detector (its ONNX model ships in the wheel: no download at run time)."""

from __future__ import annotations

from PIL import Image

EXPOSED = ("FEMALE_BREAST_EXPOSED", "FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED",
           "BUTTOCKS_EXPOSED", "ANUS_EXPOSED")


class NsfwDetector:
    """``score(image)``: the highest confidence of an exposed-anatomy class (0: none found).
    The detector loads on first use."""

    def __init__(self):
        self._detector = None

    def score(self, image: Image.Image) -> float:
        import numpy as np

        if self._detector is None:
            from nudenet import NudeDetector

            self._detector = NudeDetector()
        bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[..., ::-1])
        found = self._detector.detect(bgr)
        return max((d["score"] for d in found if d["class"] in EXPOSED), default=0.0)
