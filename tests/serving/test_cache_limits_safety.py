import pytest

from huajia.errors import HuajiaError
from huajia.serving.cache import ResultCache, cache_key
from huajia.serving.ratelimit import TokenBuckets
from huajia.serving.safety import PromptFilter, fold


def test_cache_key_covers_every_parameter():
    base = {"prompt": "a red circle", "seed": 1, "steps": 20, "loras": [["a.safetensors", 0.8]]}
    assert cache_key("embedded@abc", base) == cache_key("embedded@abc", dict(reversed(base.items())))
    for change in ({"seed": 2}, {"steps": 21}, {"loras": [["a.safetensors", 0.7]]}):
        assert cache_key("embedded@abc", {**base, **change}) != cache_key("embedded@abc", base)
    assert cache_key("embedded@def", base) != cache_key("embedded@abc", base)


def test_cache_hits_are_byte_identical_and_capped(tmp_path):
    cache = ResultCache(tmp_path, max_bytes=2500)
    cache.put("k1", b"x" * 1000)
    cache.put("k2", b"y" * 1000)
    assert cache.get("k1") == b"x" * 1000  # k1 is now the most recently used
    cache.put("k3", b"z" * 1000)  # over the cap: the least recently used (k2) goes
    assert cache.get("k2") is None and cache.get("k1") and cache.get("k3")
    assert cache.size() <= 2500
    assert ResultCache(tmp_path, max_bytes=2500).get("k3") == b"z" * 1000  # persists


def test_token_buckets_with_a_fake_clock():
    now = [0.0]
    buckets = TokenBuckets(rate=2.0, burst=3, clock=lambda: now[0])
    assert [buckets.take("alice") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = buckets.take("alice")
    assert wait == pytest.approx(0.5) and TokenBuckets.retry_after(wait) == 1
    assert buckets.take("bob") == 0.0  # keys are independent
    now[0] += 0.5
    assert buckets.take("alice") == 0.0


@pytest.mark.parametrize("prompt", ["a nude figure", "N u D e", "ｎｕｄｅ portrait", "n.u.d.3",
                                    "NAKED", "一张裸体照片", "裸 体", "色情图片"])
def test_blocked_prompts_survive_obfuscation(prompt):
    assert not PromptFilter().check(prompt).allowed


@pytest.mark.parametrize("prompt", ["two red circles", "颜色情况很好的一张图", "绿色情侣座椅",
                                    "a gorgeous sunset", "a denim jacket", "红色情人节卡片"])
def test_harmless_prompts_pass(prompt):
    assert PromptFilter().check(prompt).allowed


def test_require_safe_error_and_fold():
    with pytest.raises(HuajiaError, match="blocked content"):
        PromptFilter().require_safe("porn")
    assert fold("Ｈｅｌｌｏ, W0rld.") == "helloworld" and fold("n!de") == "nide"
