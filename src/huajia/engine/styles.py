"""Style presets as data (as Fooocus): ``data/styles.json`` records ``{name, prompt, negative_prompt}``
where ``prompt`` holds ``{prompt}``. Users add their own JSON file with the same shape:
``HUAJIA_STYLES=FILE`` (read wherever styles are looked up: requests, the server, the CLI;
``--styles-file`` sets it for one command)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from huajia.errors import HuajiaError


@dataclass(frozen=True)
class Style:
    name: str
    prompt: str
    negative_prompt: str = ""

    def apply(self, prompt: str, negative: str) -> tuple[str, str]:
        styled = self.prompt.replace("{prompt}", prompt)
        negatives = ", ".join(p for p in (negative, self.negative_prompt) if p)
        return styled, negatives


STYLES_ENV = "HUAJIA_STYLES"


def load_styles(extra: str | Path | None = None) -> dict[str, Style]:
    """The built-in presets, plus (overriding) those in ``extra`` (default: $HUAJIA_STYLES)."""
    extra = extra or os.environ.get(STYLES_ENV) or None
    text = resources.files("huajia.engine").joinpath("data/styles.json").read_text("utf-8")
    records = json.loads(text)
    if extra is not None:
        try:
            records += json.loads(Path(extra).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise HuajiaError(f"cannot read styles file '{extra}': {error}") from error
    styles = {}
    if not isinstance(records, list) or not all(isinstance(r, dict) and "name" in r for r in records):
        raise HuajiaError(f"styles file '{extra}' must be a JSON list of {{name, prompt, "
                          "negative_prompt}} objects")
    for record in records:
        if "{prompt}" not in record.get("prompt", ""):
            raise HuajiaError(f"style '{record.get('name')}' has no '{{prompt}}' in its prompt")
        styles[record["name"]] = Style(record["name"], record["prompt"],
                                       record.get("negative_prompt", ""))
    return styles


def get_style(name: str, styles: dict[str, Style] | None = None) -> Style:
    styles = styles or load_styles()
    if name not in styles:
        raise HuajiaError(f"unknown style '{name}'; known: {', '.join(sorted(styles))}")
    return styles[name]
