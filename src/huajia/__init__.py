"""huajia (画家): a text-to-image system that thinks while it paints.

The public API lives here; everything else is reached through these names.
"""

from huajia.errors import HuajiaError
from huajia.world.parser import ParsedPrompt, parse, read_prompt
from huajia.world.render import render
from huajia.world.spec import ObjectGroup, Relation, Scene, SceneSpec
from huajia.world.verifier import Verdict, verify

__version__ = "0.1.0"

__all__ = [
    "HuajiaError",
    "ObjectGroup",
    "ParsedPrompt",
    "Relation",
    "Scene",
    "SceneSpec",
    "Verdict",
    "__version__",
    "parse",
    "read_prompt",
    "render",
    "verify",
]
