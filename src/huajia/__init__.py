"""huajia (画家): a text-to-image system that thinks while it paints.

The public API lives here; everything else is reached through these names. Imports are lazy:
``import huajia`` loads neither torch nor diffusers until a name that needs them is used.

    from huajia import Engine, GenerationRequest
    engine = Engine("embedded")
    result = engine.generate(GenerationRequest("two red circles left of a blue square", seed=1))
"""

from __future__ import annotations

from importlib import import_module, metadata
from typing import TYPE_CHECKING

from huajia.errors import HuajiaError

try:
    __version__ = metadata.version("huajia")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

_LAZY = {  # public name → the module that defines it
    "Engine": "huajia.engine.engine",
    "GenerationRequest": "huajia.engine.request",
    "GenerationResult": "huajia.engine.request",
    "LoraSpec": "huajia.engine.request",
    "Thinker": "huajia.thinking.loop",
    "ThinkResult": "huajia.thinking.loop",
    "Thought": "huajia.thinking.run",
    "ThinkOptions": "huajia.thinking.options",
    "ShapesCritic": "huajia.thinking.critics",
    "ClipCritic": "huajia.thinking.critics",
    "VlmCritic": "huajia.thinking.critics",
    "make_critic": "huajia.thinking.critics",
    "ObjectGroup": "huajia.world.spec",
    "Relation": "huajia.world.spec",
    "Scene": "huajia.world.spec",
    "SceneSpec": "huajia.world.spec",
    "ParsedPrompt": "huajia.world.parser",
    "parse": "huajia.world.parser",
    "read_prompt": "huajia.world.parser",
    "unknown_words": "huajia.world.parser",
    "reword": "huajia.world.reading",
    "render": "huajia.world.render",
    "Verdict": "huajia.world.verifier",
    "verify": "huajia.world.verifier",
}

__all__ = [
    "HuajiaError",
    "__version__",
    "ClipCritic",
    "Engine",
    "GenerationRequest",
    "GenerationResult",
    "LoraSpec",
    "ObjectGroup",
    "ParsedPrompt",
    "Relation",
    "Scene",
    "SceneSpec",
    "ShapesCritic",
    "ThinkOptions",
    "ThinkResult",
    "Thinker",
    "Thought",
    "Verdict",
    "VlmCritic",
    "make_critic",
    "parse",
    "read_prompt",
    "render",
    "reword",
    "unknown_words",
    "verify",
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'huajia' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from huajia.engine.engine import Engine
    from huajia.engine.request import GenerationRequest, GenerationResult, LoraSpec
    from huajia.thinking.critics import ClipCritic, ShapesCritic, VlmCritic, make_critic
    from huajia.thinking.loop import Thinker, ThinkResult
    from huajia.thinking.options import ThinkOptions
    from huajia.thinking.run import Thought
    from huajia.world.parser import ParsedPrompt, parse, read_prompt, unknown_words
    from huajia.world.reading import reword
    from huajia.world.render import render
    from huajia.world.spec import ObjectGroup, Relation, Scene, SceneSpec
    from huajia.world.verifier import Verdict, verify
