"""Reading prompts as users write them (``huajia.world.reading``): the world's own words for
what was asked, and None whenever any word was left unread."""

import pytest

from huajia.world.parser import parse
from huajia.world.reading import read_as_user, reword

READ = [
    ("can you draw a star for me", "a star"),
    ("please paint three green triangles", "three green triangles"),
    ("I'd like a picture of a purple circle", "a purple circle"),
    ("two boxes please", "two squares"),
    ("put a triangle to the left of a square", "a triangle left of a square"),
    ("there's a circle above the triangle", "a circle above a triangle"),
    ("a square, and on its right a star", "a star right of a square"),
    ("a red circle on the left and a blue square on the right",
     "a red circle left of a blue square"),
    ("a blue square with a red circle to its left", "a red circle left of a blue square"),
    ("a star at the top and a circle at the bottom", "a star above a circle"),
    ("a circle with a square above it", "a square above a circle"),
    ("could you create a pink square next to a green star", "a pink square and a green star"),
    ("帮我画三个星星", "三个星形"),
    ("请画一个紫色的圆", "一个紫色圆形"),
    ("左边一个方块，右边一个圆", "一个正方形在一个圆形的左边"),
    ("上面是一个圆，下面是一个三角形", "一个圆形在一个三角形的上方"),
    ("一个方块，它的右边是一个星星", "一个星形在一个正方形的右边"),
    ("三角形在左边，圆在右边", "一个三角形在一个圆形的左边"),
    ("我想要一张有条纹三角形和点点圆形的图", "一个条纹三角形和一个圆点圆形"),
]


@pytest.mark.parametrize(("prompt", "words"), READ)
def test_a_fully_read_prompt_is_said_in_the_worlds_words(prompt, words):
    assert reword(prompt) == words
    assert parse(words).spec == read_as_user(prompt).spec  # the same scene, read back


@pytest.mark.parametrize("prompt", [
    "a dog and a cat",                    # nothing the world knows
    "a red circle, please make it big",   # 'big' left dangling: not read, so not dropped
    "a circle on the left",               # a side with nothing beside it
    "a star on the left and a circle on the left",  # sides that do not make a relation
    "a red circle left of a blue square",  # already the world's words
    "三角形在左边，圆在左边",
])
def test_anything_unread_or_already_canonical_is_painted_as_written(prompt):
    assert reword(prompt) is None


def test_request_words_are_not_known_words_of_the_model():
    """Reading skips 'draw', 'please', …, but the model never learned them: the plain parser
    (and so the never-learned warning of a verbatim request) still lists them."""
    from huajia.world.parser import unknown_words

    assert parse("please draw a star", reading=True).complete
    assert set(unknown_words("please draw a star")) == {"please", "draw"}
