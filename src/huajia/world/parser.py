"""Prompt parser: English or Chinese text → ``SceneSpec``, plus every word it could not read.

Tokens come from a longest-match lexicon (word sequences in English, characters in Chinese), so
"to the left of" and "三角形" win over "to"/"三". A small state machine turns tokens into object
groups and relations. Nothing is dropped silently: unknown words, colours used where they cannot
go and dangling modifiers all land in ``ParsedPrompt.unparsed``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

from huajia.errors import HuajiaError
from huajia.world import vocab
from huajia.world.spec import ObjectGroup, Relation, SceneSpec

_CJK = re.compile(r"[\u3400-\u9fff]")
_EN_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*|[,;.:!?]", re.IGNORECASE)
# Chinese prompts: one unit per character, but a Latin word stays whole
_ZH_UNIT = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*|\S", re.IGNORECASE)
_EN_FILLERS = ("the", "of", "there", "is", "are", "photo", "picture", "image", "showing", "shows",
               "on", "in", "placed", "some", "it", "drawing", "scene", "containing", "has",
               "have", "and", "with", "exactly", "just", "only", "a photo of", "an image of",
               "an image showing",
               "a picture of", "a picture with", "there is", "there are", "there's", "placed",
               ":", "!", "?")
_ZH_FILLERS = ("画面中", "图中", "一张", "图片", "照片", "上", "里", "中", "的", "个", "画", "图",
               "只", "枚", "颗",
               ":", "。", ".", "!", "?", "!")
_SEPARATORS_EN = ("and", ",", ";", ".", "with", "as well as")
_SEPARATORS_ZH = ("和", "与", "、", ",", ";", "还有", "以及", "及")
# Reading a prompt as users write it (``parse(text, reading=True)``): words that ask for the
# picture rather than describe it, and everyday names of the world's shapes. Kept out of the
# plain lexicon, so ``unknown_words`` still warns that the model never learned them.
_EN_REQUEST = ("can", "could", "would", "will", "you", "please", "pls", "draw", "paint", "make",
               "create", "generate", "render", "show", "give", "put", "place", "add", "me", "us",
               "for me", "i", "i'd", "i'm", "want", "like", "need", "looking for", "see", "get",
               "to", "let's", "just", "simple", "thanks", "thank you", "an image with",
               "a picture with", "an image of", "a drawing of", "art of", "nothing else",
               "somewhere", "also", "plus", "then", "both", "that", "which", "shows", "showing",
               "depicting", "sitting", "standing", "positioned", "located", "right there", "here",
               "next to each other", "next to", "beside", "together", "alongside", "colored",
               "coloured", "shape", "shapes", "one of", "pattern", "patterned", "kind of")
_EN_READING_SHAPES = {"dot": "circle", "round": "circle", "ball": "circle", "boxes": "square",
                      "tri": "triangle"}
_ZH_REQUEST = ("帮我", "帮忙", "请", "给我", "麻烦", "来", "一下", "我", "想", "要", "想要", "需要",
               "生成", "做", "绘制", "一幅", "一张", "张", "幅", "吧", "呢", "好吗", "谢谢", "可以",
               "能", "你", "出", "个", "放", "放着", "摆", "并排", "旁边", "挨着", "紧挨着", "一起",
               "图案", "形状", "颜色", "啊", "哦", "就", "好", "再", "加", "然后", "同时", "也")
_ZH_READING_SHAPES = {"星星": "star", "星": "star", "圆圈": "circle", "圆球": "circle",
                      "方形": "square", "方框": "square", "正方块": "square", "三角": "triangle"}
_EN_TEXTURE_POSTFIX = {"with stripes": "striped", "with dots": "dotted", "with polka dots": "dotted",
                       "with a checkered pattern": "checkered", "with checks": "checkered",
                       "in a solid colour": "solid", "in a solid color": "solid"}


@dataclass(frozen=True)
class Token:
    kind: str  # NUM SIZE TEX TEXPOST COL BGCOL SHAPE REL BG BE AT SEP FILL UNK
    value: object
    text: str


@dataclass(frozen=True)
class ParsedPrompt:
    spec: SceneSpec
    lang: str
    unparsed: tuple[str, ...] = field(default=())

    @property
    def complete(self) -> bool:
        return not self.unparsed


def detect_lang(text: str) -> str:
    return "zh" if _CJK.search(text) else "en"


def _entries(lang: str) -> dict[str, tuple[str, object]]:
    table: dict[str, tuple[str, object]] = {}
    forms = "en" if lang == "en" else "zh"
    for kind, concepts in (("SIZE", vocab.SIZES), ("TEX", vocab.TEXTURES), ("COL", vocab.COLOURS),
                           ("BGCOL", vocab.BACKGROUNDS), ("REL", vocab.RELATIONS),
                           ("SHAPE", vocab.SHAPES)):
        for concept in concepts:
            for form in getattr(concept, forms):
                table[form] = (kind, concept.id)
                if kind == "SHAPE" and lang == "en":
                    table[form + ("es" if form.endswith("x") else "s")] = ("SHAPES", concept.id)
    return table


@lru_cache(maxsize=4)
def _lexicon(lang: str, reading: bool = False) -> dict[str, tuple[str, object]]:
    table = _entries(lang)
    if reading:
        table.update(_reading_entries(lang))
    if lang == "en":
        table.update({w: ("FILL", None) for w in _EN_FILLERS})
        table.update({w: ("SEP", None) for w in _SEPARATORS_EN})
        table.update({w: ("TEXPOST", t) for w, t in _EN_TEXTURE_POSTFIX.items()})
        for count, words in vocab.EN_NUMBERS.items():
            table.update({w: ("NUM", count) for w in words})
        table.update({str(n): ("NUM", n) for n in range(1, vocab.MAX_COUNT + 1)})
        table.update({w: ("NUM", n) for w, n in vocab.EN_QUANTIFIERS.items()})
        table.update({"background": ("BG", None), "backdrop": ("BG", None)})
        table.update({"gray": ("BGCOL", "gray"), "grey": ("BGCOL", "gray")})
    else:
        table.update({w: ("FILL", None) for w in _ZH_FILLERS})
        table.update({w: ("SEP", None) for w in _SEPARATORS_ZH})
        for count, words in vocab.ZH_NUMBERS.items():
            for w in (*words, str(count)):
                table[w] = ("NUM", count)
                for measure in vocab.ZH_MEASURE_WORDS:  # 一个 一只 一枚 一颗
                    table[w + measure] = ("NUM", count)
        table.update({w: ("NUM", n) for w, n in vocab.ZH_QUANTIFIERS.items()})
        table.update({"背景": ("BG", None), "是": ("BE", None), "为": ("BE", None),
                      "在": ("AT", None), "有": ("FILL", None),
                      "几个": ("NUM", None), "一些": ("NUM", None)})
    return table


def _reading_entries(lang: str) -> dict[str, tuple[str, object]]:
    if lang == "en":
        table = {w: ("FILL", None) for w in _EN_REQUEST}
        for word, shape in _EN_READING_SHAPES.items():
            plural = word if word.endswith("es") else word + "s"
            table.update({word: ("SHAPE", shape), plural: ("SHAPES", shape)})
        return table
    table = {w: ("FILL", None) for w in _ZH_REQUEST}
    table.update({w: ("SHAPE", shape) for w, shape in _ZH_READING_SHAPES.items()})
    return table


def tokenize(text: str, lang: str, reading: bool = False) -> list[Token]:
    """Longest-match tokens; unknown words/characters become UNK tokens, as written.
    ``reading``: also the words people use to ask for a picture (see ``_EN_REQUEST``)."""
    text = unicodedata.normalize("NFKC", text)
    lexicon = _lexicon(lang, reading)
    if lang == "en":
        units, max_len = _EN_WORD.findall(text), 5
    else:
        units, max_len = _ZH_UNIT.findall(text), 6
    tokens: list[Token] = []
    i = 0
    while i < len(units):
        for n in range(min(max_len, len(units) - i), 0, -1):
            piece = _join(units[i:i + n], lang)
            if piece.lower() in lexicon:
                kind, value = lexicon[piece.lower()]
                tokens.append(Token(kind, value, piece))
                i += n
                break
        else:
            previous = tokens[-1] if tokens else None
            if previous and previous.kind == "UNK" and lang == "zh":  # keep unknown runs together
                tokens[-1] = Token("UNK", None, _join([previous.text, units[i]], lang))
            else:
                tokens.append(Token("UNK", None, units[i]))
            i += 1
    return tokens


def _join(units: list[str], lang: str) -> str:
    """Units back into text: English words with spaces; Chinese characters without, except
    around Latin words ('a cartoon of 一个圆形' keeps its spaces)."""
    if lang == "en":
        return " ".join(units)
    text = units[0]
    for unit in units[1:]:
        latin = unit[0].isascii() and unit[0].isalnum()
        text += (" " if latin and text[-1].isascii() and text[-1].isalnum() else "") + unit
    return text


class _Builder:
    """The parse state: groups built so far, pending modifiers and a pending relation."""

    def __init__(self, lang: str):
        self.lang = lang
        self.groups: list[dict] = []
        self.relations: list[Relation] = []
        self.background: str | None = None
        self.unparsed: list[str] = []
        self.mods: dict[str, object] = {}
        self.mod_words: list[str] = []
        self.mod_attrs: list[str] = []  # the attribute each of mod_words set
        self.last_group: int | None = None  # the group just closed, with no separator since
        self.pending_rel: tuple[str, str, int | None, str] | None = None  # mode, rel, anchor, word
        self.at_subject: int | None = None  # zh 'A在B的左边': A
        self.at_object: int | None = None
        self.want_background = False
        self.definite = False  # en 'the …': a reference to a group already mentioned

    def modifier(self, token: Token) -> None:
        attr = {"NUM": "count", "SIZE": "size", "TEX": "texture", "COL": "colour",
                "BGCOL": "bgcol"}[token.kind]
        if attr == "bgcol" and self.want_background:
            self.background, self.want_background = str(token.value), False
            return
        if attr in self.mods and attr != "count":  # two colours for one object: report the first
            self.unparsed.append(self.mod_words.pop(self._word_index(attr)))
        self.mods[attr] = token.value
        self.mod_words.append(token.text)
        self.mod_attrs.append(attr)

    def _word_index(self, attr: str) -> int:
        index = self.mod_attrs.index(attr)
        self.mod_attrs.pop(index)
        return index

    def background_word(self) -> None:
        if "bgcol" in self.mods:
            self.background = str(self.mods["bgcol"])
        elif "colour" in self.mods:  # an object colour cannot be a background here
            self.unparsed.append(f"{self.mod_words[-1]} background")
        else:
            self.want_background = True
        self.mods, self.mod_words, self.mod_attrs = {}, [], []

    def shape(self, token: Token) -> None:
        if "bgcol" in self.mods:
            self.unparsed.append(str(self.mods.pop("bgcol")))
        # A bare plural ('red circles', '几个圆形') means "two or more": count None.
        count = self.mods.get("count", 1 if token.kind == "SHAPE" else None)
        attrs = {"shape": token.value, "count": count, "colour": self.mods.get("colour"),
                 "texture": self.mods.get("texture"), "size": self.mods.get("size")}
        index = self._existing(attrs) if self.definite and "count" not in self.mods else None
        anchor = self.pending_rel[2] if self.pending_rel else None
        if index is None or index == anchor:  # a relation never links a group to itself
            self.groups.append(attrs)
            index = len(self.groups) - 1
        self.mods, self.mod_words, self.mod_attrs, self.definite = {}, [], [], False
        self._relate(index)
        self.last_group = index

    def _existing(self, attrs: dict) -> int | None:
        """'the blue square' after 'a blue square' refers to the same group."""
        for i, group in enumerate(self.groups):
            if group["shape"] == attrs["shape"] and all(
                    attrs[k] in (None, group[k]) for k in ("colour", "texture", "size")):
                return i
        return None

    def _relate(self, index: int) -> None:
        if self.at_subject is not None and self.at_object is None:
            self.at_object = index
        if self.pending_rel is None:
            return
        mode, rel, anchor, word = self.pending_rel
        if mode == "direct":  # en 'A left of B'
            self.relations.append(Relation(anchor, rel, index))
        elif mode == "after_object":  # zh 'B左边有A', or en 'left of B there is A' once B is known
            self.relations.append(Relation(index, rel, anchor))
        else:  # en 'left of B …': B arrives first
            self.pending_rel = ("after_object", rel, index, word)
            return
        self.pending_rel = None

    def relation(self, token: Token) -> None:
        rel = str(token.value)
        if self.at_subject is not None and self.at_object is not None:
            self.relations.append(Relation(self.at_subject, rel, self.at_object))
            self.at_subject = self.at_object = None
        elif self.last_group is not None and not self.mods:
            mode = "direct" if self.lang == "en" else "after_object"
            self.pending_rel = (mode, rel, self.last_group, token.text)
        else:
            self.pending_rel = ("before_object", rel, None, token.text)

    def texture_postfix(self, token: Token) -> None:
        if self.last_group is not None and self.groups[self.last_group]["texture"] is None:
            self.groups[self.last_group]["texture"] = token.value
        else:
            self.unparsed.append(token.text)

    def finish(self) -> ParsedPrompt:
        if self.mod_words:
            self.unparsed.extend(self.mod_words)
        if self.pending_rel is not None:
            self.unparsed.append(self.pending_rel[3])
        groups = tuple(ObjectGroup(**g) for g in self.groups)
        spec = SceneSpec(groups, tuple(self.relations), self.background)
        return ParsedPrompt(spec, self.lang, tuple(self.unparsed))


def parse(text: str, reading: bool = False) -> ParsedPrompt:
    """Read a prompt in English or Chinese. Never raises; check ``.unparsed`` and ``.spec``.
    ``reading``: as users write ('could you draw me …', '帮我画…'; ``huajia.world.reading``)."""
    lang = detect_lang(text)
    builder = _Builder(lang)
    for token in tokenize(text, lang, reading):
        if token.kind in ("NUM", "SIZE", "TEX", "COL", "BGCOL"):
            builder.modifier(token)
        elif token.kind in ("SHAPE", "SHAPES"):
            builder.shape(token)
        elif token.kind == "REL":
            builder.relation(token)
        elif token.kind == "TEXPOST":
            builder.texture_postfix(token)
        elif token.kind == "BG":
            builder.background_word()
        elif token.kind == "AT":
            builder.at_subject, builder.at_object = builder.last_group, None
        elif token.kind == "SEP":
            builder.last_group = None
        elif token.kind == "FILL" and token.text == "the":
            builder.definite = True
        elif token.kind == "UNK":
            builder.unparsed.append(token.text)
    return builder.finish()


def _known_words(lang: str) -> str:
    forms = "en" if lang == "en" else "zh"
    parts = []
    for label, concepts in (("shapes", vocab.SHAPES), ("colours", vocab.COLOURS),
                            ("textures", vocab.TEXTURES), ("sizes", vocab.SIZES)):
        parts.append(f"{label}: " + ", ".join(getattr(c, forms)[0] for c in concepts))
    return "; ".join(parts)


def read_prompt(text: str) -> ParsedPrompt:
    """Parse a prompt that must be fully understood (the oracle, the verifier), or raise a
    one-line HuajiaError naming the words it could not read and the words it knows."""
    if not text or not text.strip():
        raise HuajiaError("the prompt is empty; describe the picture, e.g. 'two red circles left "
                          "of a blue square' or '一个蓝色正方形左边有两个红色圆形'")
    parsed = parse(text)
    if parsed.unparsed:
        unknown = ", ".join(f"'{w}'" for w in parsed.unparsed)
        raise HuajiaError(f"the shapes world does not know {unknown} in {text!r}; it knows "
                          + _known_words(parsed.lang))
    if not parsed.spec.groups:
        raise HuajiaError(f"no shape named in {text!r}; name at least one, e.g. 'a red circle'")
    return parsed


def unknown_words(text: str) -> tuple[str, ...]:
    """Words of ``text`` outside the world's vocabulary, as written (what a model trained only
    on the world never learned): the check ``Engine(vocabulary=...)`` runs on every prompt.
    Known words in an order the parser cannot read ('a star: yellow') are not listed; a prompt
    the verifier must read fully goes through ``read_prompt``."""
    lang = detect_lang(text)
    words: list[str] = []
    for token in tokenize(text, lang):
        if token.kind != "UNK":
            continue
        if lang == "zh" and token.text[0].isascii():  # English words inside a Chinese prompt
            words.extend(t.text for t in tokenize(token.text, "en") if t.kind == "UNK")
        else:
            words.append(token.text)
    return tuple(words)
