"""A batch file's lines → requests. One JSON object per line, with the Python API's names
(``GenerationRequest``'s fields and their aliases, ``size`` as ``WxH``, ``loras`` as
``["PATH:SCALE", …]``, ``think`` to override ``--think``). A line without a seed gets one from
its text, so a rerun paints the same pictures. A bad line is reported with its line
number and skipped; the others still run."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from huajia.engine.request import GenerationRequest, LoraSpec, parse_size
from huajia.errors import HuajiaError, refuse_unknown
from huajia.params import params

EXTRA_FIELDS = ("size", "think")


@dataclass(frozen=True)
class BatchLine:
    number: int  # 1-based line number in the file: names the line's images
    request: GenerationRequest
    think: bool

    def image_names(self) -> list[str]:
        return [f"images/{self.number:06d}-{index}.png" for index in range(self.request.n)]

    def to_dict(self) -> dict:
        """What crosses to a Ray worker (plain JSON types)."""
        fields = dataclasses.asdict(self.request)
        fields["loras"] = [f"{lora['path']}:{lora['scale']}" for lora in fields["loras"]]
        return {"number": self.number, "think": self.think, "request": fields}

    @classmethod
    def from_dict(cls, data: dict) -> BatchLine:
        fields = dict(data["request"])
        fields["loras"] = tuple(LoraSpec.parse(text) for text in fields["loras"])
        return cls(data["number"], GenerationRequest(**fields), data["think"])


@dataclass(frozen=True)
class LineError:
    number: int
    message: str

    def line(self, path: str | Path) -> str:
        return f"{path}:{self.number}: {self.message}"


def _names() -> dict[str, str]:
    """Every accepted field name (aliases too) → the request field it sets."""
    names = {}
    for name, (_, spec) in params(GenerationRequest).items():
        names[name] = name
        names.update({alias: name for alias in spec.aliases})
    return names


def parse_line(number: int, text: str, think: bool, names: dict[str, str]) -> BatchLine:
    try:
        row = json.loads(text)
    except json.JSONDecodeError as error:
        raise HuajiaError(f"not JSON ({error.msg} at column {error.colno}); one object a "
                          "line, e.g. {\"prompt\": \"a red circle\", \"seed\": 1}") from None
    if not isinstance(row, dict):
        raise HuajiaError(f"a line is a JSON object, not {type(row).__name__}")
    refuse_unknown(set(row) - set(names), {*names.values(), *EXTRA_FIELDS}, "field")
    if "prompt" not in row:
        raise HuajiaError("no 'prompt'")
    fields = {names[key]: value for key, value in row.items() if key not in EXTRA_FIELDS}
    if "size" in row:
        fields["width"], fields["height"] = parse_size(str(row["size"]))
    if isinstance(fields.get("loras"), list):
        fields["loras"] = tuple(LoraSpec.parse(str(x)) for x in fields["loras"])
    prompt = fields.pop("prompt")
    if fields.get("seed") is None:  # a rerun (and another machine) paints the same pictures
        fields["seed"] = int.from_bytes(hashlib.sha256(text.strip().encode()).digest()[:4], "big")
    try:
        request = GenerationRequest(prompt, **fields)
    except TypeError as error:  # a value of the wrong kind (a list for steps, …)
        raise HuajiaError(f"a field has the wrong type ({error})") from None
    _check_types(request)
    return BatchLine(number, request, bool(row.get("think", think)))


def _check_types(request: GenerationRequest) -> None:
    for name, (field, _) in params(GenerationRequest).items():
        value = getattr(request, name)
        kind = str(field.type)
        if value is None or name == "loras":
            continue
        wanted = int if kind.startswith("int") else float if kind.startswith("float") else \
            str if kind.startswith("str") else None
        if wanted is float and isinstance(value, int) and not isinstance(value, bool):
            continue
        if wanted is not None and (not isinstance(value, wanted) or isinstance(value, bool)):
            raise HuajiaError(f"{name} is {value!r}; it must be a{'n' if wanted is int else ''} "
                              f"{wanted.__name__}")


def read_lines(path: str | Path, think: bool = False) -> tuple[list[BatchLine], list[LineError]]:
    """The good lines and the errors of the bad ones (a missing file is an error of its own)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise HuajiaError(f"cannot read batch file '{path}': {error.strerror}") from None
    except UnicodeDecodeError:
        raise HuajiaError(f"batch file '{path}' is not UTF-8 text") from None
    names, good, bad = _names(), [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            good.append(parse_line(number, line, think, names))
        except HuajiaError as error:
            bad.append(LineError(number, str(error)))
    return good, bad


def with_loras(lines: list[BatchLine], extra: Sequence[str]) -> list[BatchLine]:
    """``lines`` with the LoRAs every line takes (``--lora PATH[:SCALE]``) after their own; every
    LoRA file is checked to exist before any work."""
    from huajia.engine.lora import check_lora_paths

    loras = tuple(LoraSpec.parse(text) for text in extra)
    check_lora_paths(loras)
    merged = [dataclasses.replace(line, request=dataclasses.replace(
        line.request, loras=line.request.loras + loras)) for line in lines]
    for line in merged:
        check_lora_paths(line.request.loras)
    return merged
