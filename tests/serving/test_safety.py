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
    assert not missed and not wrongly, (missed, wrongly)


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
