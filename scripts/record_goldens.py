"""Record golden pixels (tests/data/golden_pixels.json) on this machine's torch and CPU kind.

    python scripts/record_goldens.py "why the pixels changed"
        re-records the embedded model's cases, after the shipped model changed on purpose (a
        retrain, an RL round); the tiny-pipeline cases are left as they are: they guard the
        code, not the weights.
    python scripts/record_goldens.py --all "what this recording is"
        records every case for a torch and CPU kind that has no recording yet (the test skips
        there); check first that the code paints what the previous code painted.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import tiny_sd  # noqa: E402
from tests.test_golden import (  # noqa: E402
    PLATFORM,
    THREADS,
    embedded_engine,
    generate_cases,
    series_cases,
    think_cases,
    tiny_cases,
)

NUMBERS = ("think_nfe", "think_zh_nfe", "think_phases")  # kept beside the cases, not in them


def main() -> None:
    args = sys.argv[1:]
    everything = args[:1] == ["--all"]
    if len(args) != 1 + everything:
        raise SystemExit(__doc__)
    path = ROOT / "tests" / "data" / "golden_pixels.json"
    golden = json.loads(path.read_text())
    recording = golden["platforms"].get(PLATFORM)
    if (recording is None) != everything:
        raise SystemExit(f"{PLATFORM} has {'no' if recording is None else 'a'} recording; "
                         f"{'record it with --all' if recording is None else 'drop --all'}")
    torch.set_num_threads(THREADS)
    engine = embedded_engine()
    observed = {**generate_cases(engine), **think_cases(engine), **series_cases(engine)}
    if everything:
        with tempfile.TemporaryDirectory() as folder:
            model = Path(folder) / "tiny-sd"
            tiny_sd().save_pretrained(model)
            observed.update(tiny_cases(model, Path(folder)))
        recording = {"recorded": args[-1], "cases": {}}
    else:
        recording["embedded_recorded"] = args[-1]
    for name, value in observed.items():
        (recording if name in NUMBERS else recording["cases"])[name] = value
    golden["platforms"][PLATFORM] = recording
    path.write_text(json.dumps(golden, indent=1, ensure_ascii=False) + "\n")
    print(f"recorded {len(observed)} cases for {PLATFORM} in {path}")


if __name__ == "__main__":
    main()
