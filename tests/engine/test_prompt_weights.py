"""A1111's prompt-weight syntax, case by case as AUTOMATIC1111's own parser
(``modules/prompt_parser.parse_prompt_attention``) reads it, and where huajia is stricter on
purpose (malformed syntax is an error that says where, not a guess)."""

import pytest

from huajia.engine.prompt_weights import BREAK, Segment, parse_weights, plain_text
from huajia.errors import HuajiaError


def weights(prompt: str) -> list[tuple[str, float]]:
    return [(s.text, round(s.weight, 4)) for s in parse_weights(prompt)]


@pytest.mark.parametrize("prompt, expected", [
    ("normal text", [("normal text", 1.0)]),
    ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
    ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),  # A1111 joins equal weights
    ("((double))", [("double", 1.21)]),
    ("a [less] word", [("a ", 1.0), ("less", 0.9091), (" word", 1.0)]),
    ("[[half]]", [("half", 0.8264)]),
    ("a (red:1.5) circle", [("a ", 1.0), ("red", 1.5), (" circle", 1.0)]),
    ("(red:0.25)", [("red", 0.25)]),
    # an explicit weight multiplies what is nested inside it, as in A1111
    ("(a (b:1.2) c:0.5)", [("a ", 0.5), ("b", 0.6), (" c", 0.5)]),
    ("((a:1.2):1.5)", [("a", 1.8)]),
    # escaped brackets are literal text
    (r"\(literal\) and \[too\]", [("(literal) and [too]", 1.0)]),
    (r"(\(nested\):1.3)", [("(nested)", 1.3)]),
    # a colon outside brackets is text
    ("ratio 3:2", [("ratio 3:2", 1.0)]),
    ("两个(红色:1.3)圆形", [("两个", 1.0), ("红色", 1.3), ("圆形", 1.0)]),
    # BREAKs start new chunks; 'BREAK' inside a word is just text
    ("a BREAK b", [("a ", 1.0), (BREAK, -1.0), (" b", 1.0)]),
    ("BREAKFAST", [("BREAKFAST", 1.0)]),
])
def test_a1111_cases(prompt, expected):
    assert weights(prompt) == expected


@pytest.mark.parametrize("prompt, needle", [
    ("(unclosed", "'(' is never closed"),
    ("closed)", "')' closes nothing"),
    ("(mixed]", "']' closes nothing"),
    ("(word:heavy)", "weight 'heavy' is not a number"),
    ("[word:0.5]", "cannot carry a weight"),
])
def test_malformed_syntax_is_an_error_that_says_where(prompt, needle):
    # A1111 guesses here (an unclosed '(' weighs the rest of the prompt 1.1); we refuse
    with pytest.raises(HuajiaError, match="malformed prompt") as error:
        parse_weights(prompt)
    assert needle in str(error.value) and "at character" in str(error.value)


def test_plain_text_drops_the_syntax_and_breaks():
    assert plain_text("a (red:1.5) [circle] BREAK (two:1.1) stars") == "a red circle two stars"
    assert parse_weights("") == [] and Segment("x").weight == 1.0


@pytest.mark.parametrize("prompt, needle", [
    ("(x:nan)", "outside"), ("(x:1e309)", "outside"), ("(x:-inf)", "outside"),
    ("(x:11)", "outside"), ("((x:5):5)", "multiply"),
    ("(" * 500 + "x" + ")" * 500, "nest deeper"), ("a BREAK " * 9 + "b", "BREAKs"),
])
def test_absurd_weights_depth_and_breaks_are_refused(prompt, needle):
    """What would cost without bound or paint a black picture (then cached) is an error."""
    with pytest.raises(HuajiaError, match=needle) as info:
        parse_weights(prompt)
    assert len(str(info.value)) < 300 and "\n" not in str(info.value)  # one short line


def test_a_prompt_of_invisible_characters_is_empty():
    from huajia.engine.request import GenerationRequest

    with pytest.raises(HuajiaError, match="empty"):
        GenerationRequest("\u200b\u200d\u2060 \ufeff")
