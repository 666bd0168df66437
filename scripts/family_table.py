"""Write docs/models.md's family x feature table from what the tests exercise.

It runs the per-family tests (each parametrised over tests/family_fixtures), reads pytest's
JUnit XML, and marks a cell ✔ when that family's test of that feature passed, ✘ when it failed,
and "refused" when the test checks the family's one-line refusal (the refusal's text comes
from the family itself, ``Family.describe``). Nothing in the table is typed by hand.

Run: python scripts/family_table.py   (runs those tests: many minutes on 2 cores)
or:  python scripts/family_table.py --xml FILE   (from a whole-suite run's JUnit XML, e.g.
     PYTEST_ADDOPTS=--junitxml=FILE make test)
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ["tests/engine/test_families.py", "tests/engine/test_family_lora.py",
         "tests/engine/test_family_edits.py", "tests/engine/test_family_workflows.py",
         "tests/thinking/test_every_family.py", "tests/training/test_lora_families.py",
         "tests/serving/test_families_serve.py", "tests/training/test_rl_families.py",
         "tests/training/test_rl_flow_sde.py"]
# test function → the table's column (tests not named here do not make a column)
FEATURES = {
    "test_each_family_paints_what_was_asked": "generate, n, seeds",
    "test_the_negative_prompt_and_the_style_reach_the_picture": "negative prompt, styles",
    "test_samplers_by_name_and_flow_samplers_on_flow_models": "samplers by name",
    "test_weights_and_break_reach_the_encoder": "weights, BREAK, long prompts",
    "test_cfg_rescale_and_cutoff_work_where_they_mean_something": "CFG rescale, CFG cutoff",
    "test_what_a_family_cannot_do_is_one_line": "CFG rescale, CFG cutoff",
    "test_a_lora_paints_at_its_scale_beside_others_and_comes_off": "LoRA",
    "test_kohya_names_load_on_every_family": "kohya LoRA",
    "test_a_kohya_file_paints_as_the_same_lora_in_diffusers_format": "kohya LoRA",
    "test_a_masked_edit_keeps_every_pixel_outside_the_mask": "masked edit",
    "test_a_variation_differs_and_keeps_the_size": "variation",
    "test_the_hires_fix_paints_at_the_scaled_size": "hires fix",
    "test_a_repaint_keeps_the_latents_outside_the_mask_exactly": "repaint (thinking)",
    "test_the_loop_runs_through_its_phases_on_every_family": "thinking loop",
    "test_two_steps_write_a_lora_that_loads_back_and_changes_the_picture": "train lora",
    "test_one_step_writes_weights_that_load_back_and_change_the_picture": "train rl nft/craft",
    "test_one_grpo_step_writes_weights_that_load_back_and_change_the_picture": "train rl grpo",
    "test_a_size_beyond_native_is_painted_native_then_upscaled": "beyond native: upscaled",
    "test_a_series_is_seeded_panel_by_panel": "series",
    "test_a_batch_file_is_painted_on_every_family": "batch (Ray: flux, sana)",
    "test_a_flow_family_batch_is_the_same_on_ray": "batch (Ray: flux, sana)",
    "test_every_family_is_served": "serve",
}
REFUSING = {"test_what_a_family_cannot_do_is_one_line"}  # tests that check a refusal


def run_tests(xml: Path) -> None:
    present = [t for t in TESTS if (ROOT / t).exists()]
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    f"--junitxml={xml}", *present], cwd=ROOT, check=False)


def outcomes(xml: Path) -> dict[tuple[str, str], str]:
    """{(column, fixture): 'pass' | 'fail'} from pytest's JUnit XML."""
    cells: dict[tuple[str, str], str] = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        match = re.fullmatch(r"(\w+)\[([\w-]+?)(?:-.*)?\]", case.get("name", ""))
        if not match:
            continue
        function, fixture = match.groups()
        column = next((c for f, c in FEATURES.items() if function.startswith(f)), None)
        if column is None:
            continue
        failed = case.find("failure") is not None or case.find("error") is not None
        if case.find("skipped") is not None:
            continue
        state = "fail" if failed else "refused" if function in REFUSING else "pass"
        if cells.get((column, fixture)) != "fail":
            cells[(column, fixture)] = state
    return cells


def table(cells: dict[tuple[str, str], str]) -> str:
    from tests.family_fixtures import FAMILIES

    columns = [c for c in dict.fromkeys(FEATURES.values()) if any(k[0] == c for k in cells)]
    lines = ["| family | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for fixture in FAMILIES:
        row = []
        for column in columns:
            state = cells.get((column, fixture))
            row.append({None: "—", "fail": "✘", "refused": "refused (one line)",
                        "pass": "✔"}[state])
        lines.append(f"| {fixture} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    sys.path.insert(0, str(ROOT))
    if sys.argv[1:2] == ["--xml"]:
        cells = outcomes(Path(sys.argv[2]))
    else:
        with tempfile.TemporaryDirectory() as folder:
            xml = Path(folder) / "families.xml"
            run_tests(xml)
            cells = outcomes(xml)
    path = ROOT / "docs" / "models.md"
    text = path.read_text(encoding="utf-8")
    start, end = "<!-- family table: scripts/family_table.py -->", "<!-- end of family table -->"
    before, rest = text.split(start)
    _, after = rest.split(end)
    path.write_text(f"{before}{start}\n{table(cells)}\n{end}{after}", encoding="utf-8")
    print(f"wrote the family table in {path}")


if __name__ == "__main__":
    main()
