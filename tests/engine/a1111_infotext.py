"""AUTOMATIC1111's reading of a PNG's 'parameters' text, written from its documented format
(modules/infotext_utils.py, ``parse_generation_parameters``): the last line holds the
'Key: value' pairs when it has at least three; values in double quotes are JSON strings;
'WxH' values split into 'Key-1' and 'Key-2'; '<lora:name:scale>' tags stay in the prompt,
where A1111's extra-networks step applies them."""

from __future__ import annotations

import json
import re

RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
RE_IMAGESIZE = re.compile(r"^(\d+)x(\d+)$")
RE_LORA = re.compile(r"<lora:([^:>]+):([^>]+)>")


def parse_generation_parameters(text: str) -> dict:
    result: dict = {}
    prompt, negative, in_negative = "", "", False
    *lines, last = text.strip().split("\n")
    if len(RE_PARAM.findall(last)) < 3:
        lines.append(last)
        last = ""
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[16:].strip()
        if in_negative:
            negative += ("" if negative == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line
    for key, value in RE_PARAM.findall(last):
        if value and value[0] == '"' and value[-1] == '"':
            value = json.loads(value)
        size = RE_IMAGESIZE.match(value)
        if size:
            result[f"{key}-1"], result[f"{key}-2"] = size.group(1), size.group(2)
        else:
            result[key] = value
    result["Prompt"], result["Negative prompt"] = prompt, negative
    result["loras"] = {name: float(scale) for name, scale in RE_LORA.findall(prompt)}
    return result
