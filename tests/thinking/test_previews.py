"""Pictures people can see: each pause's x0 preview (with the plan's boxes) rides with its thought
as a small data URL, live over the job's event stream and on the web page; timeline.png marks
the boxes; thoughts.json stays small."""

import base64
import io
import json
import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from tests.serving.conftest import KEY, LiveServer, make_config

from huajia.engine.engine import Engine
from huajia.engine.infotext import parse_infotext
from huajia.engine.request import GenerationRequest
from huajia.serving.app import create_app
from huajia.thinking.critics import ShapesCritic
from huajia.thinking.loop import Thinker, ThinkOptions, thought_lines
from huajia.thinking.preview import COLOURS, boxed
from huajia.thinking.timeline import timeline, write_thoughts

PROMPT = "two red circles left of a blue square"


def _picture(data_url: str) -> Image.Image:
    assert data_url.startswith("data:image/jpeg;base64,")
    return Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))


def _near(pixel, colour: str, tolerance: int = 60) -> bool:
    target = tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return all(abs(int(a) - b) <= tolerance for a, b in zip(pixel, target, strict=True))


def test_thoughts_carry_previews_with_boxes_and_the_timeline_marks_them(sd_dir, tmp_path):
    engine = Engine(str(sd_dir))
    seen = []
    options = ThinkOptions(pauses=2, restarts=1, max_repaints=1, compose_tries=0)
    result = Thinker(engine, ShapesCritic(), options).think(
        GenerationRequest(PROMPT, seed=3, steps=6, width=64, height=64), seen.append)
    with_pictures = [t for t in seen if t.preview]
    phases = {t.phase for t in with_pictures}
    assert {"plan", "restart", "pause", "reflect", "stop"} <= phases
    assert seen[0].phase == "plan" and seen[0].preview is not None
    for thought in with_pictures:
        picture = _picture(thought.preview)
        assert max(picture.size) == 160
        left = np.asarray(picture.convert("RGB"))[80, 0]  # region 0's box begins at x = 0
        assert _near(left, COLOURS[0])
    pause = [t for t in seen if t.phase == "pause"]
    assert pause[0].preview is not None and pause[1].preview is None  # one per look
    data = json.loads(write_thoughts(result, tmp_path / "t.json").read_text(encoding="utf-8"))
    assert all("preview" not in t for t in data["thoughts"])
    # the plan rides in the picture's infotext, and is said as "plan", not at a step "@-1"
    recorded = json.loads(parse_infotext(result.infotext)["Plan"])
    assert recorded["planner"] == "world" and recorded["regions"] == data["plan"]
    assert [r["caption"] for r in recorded["regions"]] == [r.caption for r in result.plan.regions]
    assert [tuple(r["box"]) for r in recorded["regions"]] == [r.box for r in result.plan.regions]
    assert thought_lines(seen[0]).startswith("plan: ")
    assert thought_lines(pause[0]).startswith(f"pause@{pause[0].step}")
    sheet = timeline(result)
    assert sheet.size[0] > 400
    # without a follower nothing is encoded: the thoughts stay light for benchmarks
    quiet = Thinker(engine, ShapesCritic(), options).think(
        GenerationRequest(PROMPT, seed=3, steps=6, width=64, height=64))
    assert all(t.preview is None for t in quiet.thoughts)


def test_boxed_draws_each_region_in_its_colour():
    from huajia.thinking.plan import plan_prompt

    plan = plan_prompt(PROMPT)
    picture = np.asarray(boxed(Image.new("RGB", (64, 64), "white"), plan, side=128))
    assert picture.shape == (128, 128, 3)
    assert _near(picture[100, 0], COLOURS[0], 5) and _near(picture[100, 127], COLOURS[1], 5)
    assert _near(picture[100, 40], "#ffffff", 5)  # inside a box: the picture itself


def test_a_thinking_job_streams_previews_and_takes_a_planner(tmp_path, sd_dir):
    app = create_app(make_config(tmp_path, sd_dir))
    body = {"prompt": PROMPT, "size": "64x64", "seed": 5, "steps": 6, "think": True,
            "pauses": 2, "repaints": 1, "compose_tries": 0, "planner": "world"}
    with TestClient(app) as client:
        job = client.post("/v1/jobs", json=body).json()
        with client.stream("GET", f"/v1/jobs/{job['id']}/events") as stream:
            events = [json.loads(line[6:]) for line in stream.iter_lines()
                      if line.startswith("data: ")]
        bad = client.post("/v1/jobs", json={**body, "planner": "oracle"})
    thoughts = [e for e in events if e["type"] == "thought"]
    assert thoughts[0]["phase"] == "plan" and thoughts[0]["preview"].startswith("data:image/")
    assert [t for t in thoughts if t["phase"] == "pause" and t["preview"]]
    assert "two red circles @ (0.00,0.00)-(0.50,1.00)" in thoughts[0]["observation"]
    assert bad.status_code == 400 and "planner" in bad.json()["error"]["message"]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (scripts/setup.sh installs it)")
def test_the_page_shows_each_thought_beside_its_picture(tmp_path, sd_dir):
    sync_api = pytest.importorskip("playwright.sync_api")
    app = create_app(make_config(tmp_path, sd_dir, api_keys=(KEY,)))
    with LiveServer(app) as server, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 1400})
        page.goto(f"{server.url}/?key={KEY}")
        page.fill("#prompt", PROMPT)
        page.fill("#seed", "4")
        page.select_option("#size", "64x64")
        page.check("#think")
        page.click("#go")
        page.wait_for_selector("#gallery img", timeout=120_000)
        previews = page.locator("#thoughts li.with-preview img.preview")
        assert previews.count() >= 3
        width = page.evaluate("(img) => img.naturalWidth", previews.first.element_handle())
        assert width == 160  # the thumbnail decoded in the browser
        first = page.locator("#thoughts li").first.inner_text()
        assert first.startswith("plan") and not first.startswith("plan@")  # not "plan@-1"
        page.screenshot(path=str(tmp_path / "thinking-page.png"), full_page=True)
        browser.close()
