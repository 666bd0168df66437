"""Re-record the embedded model's golden pixels (tests/data/golden_pixels.json) after the
shipped model changes on purpose (a retrain, an RL round). The tiny-pipeline cases are left as
they are: they guard the code, not the weights.

Run: python scripts/record_goldens.py "why the pixels changed"
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.test_golden import _think, digests  # noqa: E402

from huajia import Engine, GenerationRequest  # noqa: E402
from huajia.engine.series import make_series  # noqa: E402


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python scripts/record_goldens.py 'why the pixels changed'")
    path = ROOT / "tests" / "data" / "golden_pixels.json"
    golden = json.loads(path.read_text())
    if (torch.__version__, torch.backends.cpu.get_cpu_capability()) != (golden["torch"],
                                                                         golden["cpu"]):
        raise SystemExit("record on the torch and CPU kind the file names, or the test skips")
    engine = Engine("embedded")
    cases = golden["cases"]
    cases["generate"] = digests(engine.generate(GenerationRequest(
        "two red circles left of a blue square", seed=11, steps=6, n=2)).images)
    cases["generate_zh_weights_style"] = digests(engine.generate(GenerationRequest(
        "(红色:1.3)圆形 BREAK 一个蓝色正方形", negative_prompt="绿色", seed=5, steps=6,
        style="minimalist")).images)
    cases["generate_euler_a"] = digests(engine.generate(GenerationRequest(
        "a yellow star", seed=2, steps=6, scheduler="euler_a")).images)
    result = _think(engine, "two red circles left of a blue square", 3)
    cases["think"], golden["think_nfe"] = digests([result.image]), result.nfe
    golden["think_phases"] = [t.phase for t in result.thoughts]
    result = _think(engine, "一个绿色三角形在一个红色圆形上面", 4)
    cases["think_zh"], golden["think_zh_nfe"] = digests([result.image]), result.nfe
    cases["series"] = digests(p.image for p in make_series(
        engine, ["a red circle", "一个蓝色正方形"], seed=2, steps=6))
    golden["embedded_recorded"] = sys.argv[1]
    path.write_text(json.dumps(golden, indent=1, ensure_ascii=False) + "\n")
    print(f"re-recorded the embedded model's cases in {path}")


if __name__ == "__main__":
    main()
