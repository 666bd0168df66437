import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from huajia.errors import HuajiaError
from huajia.thinking.critics import ShapesCritic, VlmCritic, make_critic, parse_reflection
from huajia.thinking.plan import plan_prompt
from huajia.world.render import render
from huajia.world.sampler import scene_for


def test_shapes_critic_scores_regions_and_explains():
    plan = plan_prompt("two red circles left of a blue square")
    good = render(scene_for(plan.spec, 1))
    critique = ShapesCritic().inspect(good, plan, 90)
    assert critique.satisfied and all(r.score == 100 for r in critique.reports)
    wrong = render(scene_for(plan_prompt("two red circles").spec, 1))
    critique = ShapesCritic().inspect(wrong, plan, 90)
    square = critique.reports[1]
    assert not critique.satisfied and square.score == 0
    assert "expected 1 blue square, found 0" in square.observation
    with pytest.raises(HuajiaError, match="shapes critic"):
        ShapesCritic().inspect(wrong, plan_prompt("a castle"), 90)
    # a look that came close scores above one with nothing there: looks can be compared
    pair = plan_prompt("two red circles")
    half = ShapesCritic().inspect(render(scene_for(plan_prompt("a red circle").spec, 1)), pair, 90)
    none = ShapesCritic().inspect(render(scene_for(plan_prompt("a blue star").spec, 1)), pair, 90)
    assert half.reports[0].score == 50 and none.reports[0].score == 0


class _FakeVLM(BaseHTTPRequestHandler):
    """An OpenAI-compatible /chat/completions that answers per the sub-caption it is sent."""

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        caption = body["messages"][1]["content"][0]["text"]
        assert body["messages"][1]["content"][1]["image_url"]["url"].startswith("data:image/png")
        if "slow" in caption:
            time.sleep(2)
        content = ("no idea" if "square" in caption else
                   'Sure! {"score": 42, "observation": "a pink blob", '
                   '"revised_caption": "a bright red circle"}')
        reply = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]})
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(reply.encode())
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (the timeout test): nothing to answer

    def log_message(self, *args):
        pass


@pytest.fixture
def vlm_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeVLM)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


def test_vlm_critic_reads_json_and_survives_bad_answers(vlm_url):
    critic = VlmCritic(vlm_url, "fake-vlm", timeout=0.5)
    plan = plan_prompt("a red circle left of a blue square")
    critique = critic.inspect(Image.new("RGB", (64, 64), "white"), plan, 90)
    circle, square = critique.reports
    assert circle.score == 42 and circle.revised_caption == "a bright red circle"
    assert square.score is None and "not judged" in square.observation  # malformed → fallback
    assert not critique.satisfied


def test_vlm_timeout_and_unreachable_endpoint_fall_back(vlm_url):
    plan = plan_prompt("a slow red circle")
    slow = VlmCritic(vlm_url, "fake", timeout=0.3).inspect(Image.new("RGB", (64, 64)), plan, 90)
    assert all(r.score is None for r in slow.reports)
    dead = VlmCritic("http://127.0.0.1:9/v1", "fake", timeout=0.3)
    assert dead.inspect(Image.new("RGB", (64, 64)), plan, 90).reports[0].score is None


def test_reflection_parsing_and_critic_errors():
    assert parse_reflection('```json\n{"score": 80, "observation": "ok"}\n```')["score"] == 80
    with pytest.raises(ValueError):
        parse_reflection('{"score": 400}')
    with pytest.raises(HuajiaError, match="--vlm-url"):
        make_critic("vlm")
    with pytest.raises(HuajiaError, match="unknown critic"):
        make_critic("oracle")


def test_clip_critic_with_a_tiny_local_checkpoint(tmp_path, tokenizer):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    config = CLIPConfig(text_config={"vocab_size": 400, "hidden_size": 32, "num_hidden_layers": 1,
                                     "num_attention_heads": 2, "intermediate_size": 37},
                        vision_config={"hidden_size": 32, "num_hidden_layers": 1,
                                       "num_attention_heads": 2, "intermediate_size": 37,
                                       "image_size": 32, "patch_size": 8},
                        projection_dim=16)
    CLIPModel(config).save_pretrained(tmp_path)
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                                                 crop_size=32),
                              tokenizer=tokenizer)
    processor.save_pretrained(tmp_path)
    critic = make_critic("clip", clip_model=str(tmp_path))
    plan = plan_prompt("a red circle left of a blue square")
    critique = critic.inspect(Image.new("RGB", (128, 128), "white"), plan, 90)
    assert len(critique.reports) == 2
    assert all(0 <= r.score <= 100 for r in critique.reports)
