import sys
from pathlib import Path

import pytest

from huajia.errors import HuajiaError
from huajia.serving.safety import PromptFilter, fold

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
from filter_sets import blocked_set, read  # noqa: E402


@pytest.fixture(scope="module")
def prompt_filter():
    return PromptFilter()


@pytest.mark.parametrize("prompt", ["a nude figure", "N u D e", "ｎｕｄｅ portrait", "n.u.d.3",
                                    "NAKED", "一张裸体照片", "裸 体", "色情图片",
                                    # the examples: Cyrillic е, Armenian ո, accent, swap
                                    "nudе", "ոude", "núde", "nvde", "裸體", "淫穢", "luoti",
                                    "luǒ tǐ", "luo3 ti3", "nu\u200bde", "n̷u̷d̷e̷", "𝐧𝐮𝐝𝐞",
                                    "一个性交场景", "seqing tupian"])
def test_blocked_prompts_survive_obfuscation(prompt_filter, prompt):
    assert not prompt_filter.check(prompt).allowed


@pytest.mark.parametrize("prompt", ["two red circles", "颜色情况很好的一张图", "绿色情侣座椅",
                                    "a gorgeous sunset", "a denim jacket", "红色情人节卡片",
                                    "a flamingo red square", "an Essex scene", "顏色情況很好",
                                    "个性交友网站", "zhijie hua yige yuan", "hong se qing xu",
                                    "Привет, красный круг"])
def test_harmless_prompts_pass(prompt_filter, prompt):
    assert prompt_filter.check(prompt).allowed


def test_the_sets_blocked_and_innocent(prompt_filter):
    """The committed sets (benchmarks/data) and a freshly generated one the filter was not
    developed on: every obfuscated prompt blocked, every look-alike passed."""
    blocked, innocent = read("filter_blocked.txt"), read("filter_innocent.txt")
    assert len(blocked) >= 100 and len(innocent) >= 100
    assert sum(any("\u4e00" <= c <= "\u9fff" for c in p) for p in innocent) >= 30  # both languages
    missed = [p for p in blocked + blocked_set(11, 200) if prompt_filter.check(p).allowed]
    wrongly = [p for p in innocent if not prompt_filter.check(p).allowed]
    # two look-alikes name a blocked word outright ('dismembering? no: …'): ≤ 2 % of them
    assert not missed and len(wrongly) <= 0.02 * len(innocent), (missed, wrongly)


def test_world_prompts_all_pass(prompt_filter):
    from huajia.evaluation.prompts import shapes_eval_prompts

    assert all(prompt_filter.check(p.text).allowed for p in shapes_eval_prompts(20))


def test_require_safe_error_and_fold(prompt_filter, tmp_path):
    with pytest.raises(HuajiaError, match="blocked content"):
        prompt_filter.require_safe("porn")
    assert fold("Ｈｅｌｌｏ, W0rld.") == "heiioworid" and fold("n!de") == "nide"
    own = tmp_path / "terms.txt"
    own.write_text("dragon\n龙 [no pinyin]\n+dragonfly\n", encoding="utf-8")
    mine = PromptFilter(own)
    assert not mine.check("a DRAG0N").allowed and not mine.check("一条龍").allowed
    assert mine.check("a dragonfly").allowed and mine.check("long hair").allowed


def test_pairs_and_groups_block_words_that_are_harmless_alone(tmp_path):
    """'A & B': blocked only when both occur; a group is any of its terms, groups nest; a '+'
    compound excuses the terms inside it but not a pair's term equal to it."""
    own = tmp_path / "terms.txt"
    own.write_text("@person: =man, =woman, =girl{,s}\n@who: @person, =photo\n"
                   "=bare & @who\n=bloody & @person & =knife\n+bare minimum\n"
                   "+nudez\nnude\n=nudez & =total\n", encoding="utf-8")
    mine = PromptFilter(own)
    assert not mine.check("a bare woman").allowed and not mine.check("b a r e GIRLS").allowed
    assert not mine.check("a bare photo").allowed  # through the nested group
    assert mine.check("a bare tree").allowed and mine.check("a bare minimum man").allowed
    assert mine.check("a bloody man").allowed and not mine.check("a bloody man, knife").allowed
    assert mine.check("a nudez da paisagem").allowed and not mine.check("nudez total").allowed
    assert mine.check("a bare woman").term == "bare + woman"
    (tmp_path / "bad.txt").write_text("=bare & @nobody\n", encoding="utf-8")
    with pytest.raises(HuajiaError, match="'@nobody' is not defined"):
        PromptFilter(tmp_path / "bad.txt")
    (tmp_path / "loop.txt").write_text("@a: @a, x\n=y & @a\n", encoding="utf-8")
    with pytest.raises(HuajiaError, match="names itself"):
        PromptFilter(tmp_path / "loop.txt")


@pytest.mark.parametrize("prompt", [
    "a woman with no clothes on", "a corpse covered in maggots", "his severed hand",
    "a man shot in the head", "uma garota nua", "nudez frontal", "голая девушка", "une femme nue",
    "eine nackte Frau", "una mujer desnuda", "una donna nuda", "血泊中的男人", "血まみれの死体"])
def test_the_shipped_pairs_block(prompt_filter, prompt):
    assert not prompt_filter.check(prompt).allowed


@pytest.mark.parametrize("prompt", [
    "uma rua nua de árvores", "a nudez da paisagem", "голые деревья зимой", "alberi nudi",
    "un árbol desnudo", "ein nackter Baum", "un mur nu", "a bloody mary and a man",
    "a girl with bare feet", "ein blutiges Steak", "a head of lettuce cut off the stalk"])
def test_the_shipped_pairs_pass_bare_things(prompt_filter, prompt):
    assert prompt_filter.check(prompt).allowed, prompt_filter.check(prompt)


class _Moderation:
    """A local OpenAI-compatible /v1/moderations that flags texts containing 'love'."""

    def __enter__(self):
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        calls = self.calls = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                calls.append((self.path, body["input"]))
                flagged = "love" in body["input"]
                answer = json.dumps({"results": [{"flagged": flagged,
                                                  "categories": {"sexual": flagged}}]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        return self

    def __exit__(self, *exc):
        self.server.shutdown()


def test_a_moderation_service_flags_what_the_lists_do_not_name(tmp_path, sd_dir):
    from fastapi.testclient import TestClient
    from tests.serving.conftest import make_config

    from huajia.serving.app import create_app

    body = {"prompt": "two lovers in the moonlight", "steps": 2, "size": "64x64"}
    with _Moderation() as moderation:
        config = make_config(tmp_path, sd_dir, moderation_url=moderation.url)
        with TestClient(create_app(config)) as client:
            refused = client.post("/v1/jobs", json=body)
            assert refused.status_code == 400 and "moderation: sexual" in refused.text
            assert moderation.calls[0] == ("/v1/moderations", "two lovers in the moonlight")
            assert client.post("/v1/jobs", json={**body, "prompt": "a red circle"}).status_code == 202
            calls = len(moderation.calls)
            client.post("/v1/jobs", json=body)
            assert len(moderation.calls) == calls  # the answer was cached
    down = make_config(tmp_path / "down", sd_dir, moderation_url="http://127.0.0.1:9/v1",
                       moderation_timeout_s=2)
    with TestClient(create_app(down)) as client:
        answer = client.post("/v1/jobs", json={**body, "prompt": "a red circle"})
        assert answer.status_code == 503 and "moderation" in answer.json()["error"]["message"]


def test_the_language_sets_block_and_pass(prompt_filter):
    """Every language's plainly bad prompts blocked; at most 2 % false positives on the
    innocent look-alikes (benchmarks/filter_sets.py prints the table)."""
    from filter_sets import measure

    table = measure(prompt_filter)
    assert len(table) >= 13  # obfuscated, 11 languages, look-alikes, all
    assert table["all"]["block_rate"] >= 0.98 and table["all"]["fp_rate"] <= 0.02, table["all"]
    languages = {k: v for k, v in table.items() if k not in ("obfuscated", "look-alikes", "all")}
    # no language pays for another's words ('nua' was 20 % of Portuguese before the pairs)
    assert {k: v["fp_rate"] for k, v in languages.items() if v["fp_rate"] > 0} == {}
    assert {k: v["block_rate"] for k, v in languages.items() if v["block_rate"] < 1} == {}
