import numpy as np
from PIL import Image

from huajia.thinking.timeline import comparison


def test_comparison_is_labelled_in_the_prompts_language():
    plain, thought = Image.new("RGB", (64, 64), "white"), Image.new("RGB", (64, 64), "red")
    en = comparison("一个红色圆形", plain, thought, "note", "note", "en")
    zh = comparison("一个红色圆形", plain, thought, "note", "note", "zh")
    assert en.size == zh.size  # same layout: only the labels under the pictures differ
    assert not np.array_equal(np.asarray(en), np.asarray(zh))
    assert np.array_equal(np.asarray(en)[:280], np.asarray(zh)[:280])  # title and pictures
