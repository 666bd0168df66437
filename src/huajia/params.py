"""The one vocabulary: every user-facing parameter has one name, one default, one limit, one
unit and one help text, declared once on a frozen dataclass (``GenerationRequest``,
``ThinkOptions``, ``CriticOptions``, ``ExpansionOptions``, the training recipes ``BaseRecipe``,
``LoraRecipe`` and ``RLRecipe``, the server's ``ServeConfig``).

``param(...)`` puts that declaration in the dataclass field's metadata; ``check(self)`` enforces
the limits in ``__post_init__``; the CLI (typer options, ``cli_common.vocabulary_options``) and
the HTTP schema (pydantic fields) are built from the same metadata, so the surfaces cannot drift
apart. Older names stay as aliases (``canonical`` renames them in config files and records).
This module imports nothing heavy: it is read at import time of the CLI and the server.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from huajia.errors import HuajiaError


@dataclass(frozen=True)
class Param:
    """What one parameter means, and what it may be."""

    help: str
    low: float | None = None  # inclusive
    high: float | None = None  # inclusive
    choices: tuple[str, ...] = ()  # allowed values of a str parameter
    aliases: tuple[str, ...] = ()  # older or shorter names (CLI flags and HTTP fields)
    max_length: int | None = None  # for strings and tuples
    multiple_of: int | None = None
    cli: bool = True  # an option of the commands that take the dataclass
    http: bool = True  # a field of the HTTP request body
    unit: str = ""  # of a number: "seconds", "bytes", "minutes"; the name says it (…_s, …_bytes)
    env: str | None = None  # the environment variable the CLI reads when the flag is not given
    # older names in another unit: (name, how much of this parameter's unit one of it is, that
    # unit), e.g. ("cache_mb", 1024**2, "MiB") for cache_max_bytes; converted where they come in
    scaled_aliases: tuple[tuple[str, float, str], ...] = ()
    short: str = ""  # a one-letter CLI flag, e.g. "-n"
    cli_type: Any = None  # what the CLI reads when it is not the field's type (a key file)
    parse: Callable[[Any], Any] | None = None  # the CLI's value -> the field's (read that file)


def param(default: Any = dataclasses.MISSING, **meta: Any) -> Any:
    """A dataclass field declared with its ``Param`` (help, limits, aliases)."""
    return dataclasses.field(default=default, metadata={"param": Param(**meta)})


def same_as(cls: type, name: str, **changes: Any) -> Any:
    """A field that means what ``cls.name`` means (its default, help, limits, environment
    variable), for a second dataclass that holds the same setting (``ServeConfig.vlm_key`` is
    ``CriticOptions.vlm_key``): declared once, so the two cannot drift apart."""
    field, spec = params(cls)[name]
    return dataclasses.field(default=field.default,
                             metadata={"param": dataclasses.replace(spec, **changes)})


def params(cls: type) -> dict[str, tuple[dataclasses.Field, Param]]:
    """The declared parameters of a vocabulary dataclass, in declaration order."""
    return {f.name: (f, f.metadata["param"]) for f in dataclasses.fields(cls)
            if "param" in f.metadata}


def canonical(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (a config file's, a saved record's) with older names renamed to the declared
    ones and older units converted (``cache_mb`` -> ``cache_max_bytes``); other keys stay."""
    older: dict[str, tuple[str, Any]] = {}
    for name, (field, spec) in params(cls).items():
        older.update({alias: (name, None) for alias in spec.aliases})
        older.update({alias: (name, (factor, field)) for alias, factor, _ in spec.scaled_aliases})
    renamed: dict[str, Any] = {}
    for key, value in values.items():
        name, scaled = older.get(key, (key, None))
        renamed[name] = scale(value, *scaled) if scaled else value
    return renamed


def scale(value: Any, factor: float, field: dataclasses.Field) -> Any:
    """A value in an older unit converted to the field's (an int field stays an int)."""
    if value is None:
        return None
    converted = value * factor
    return round(converted) if field.type in ("int", int) else converted


def check(instance: Any) -> None:
    """Raise ``HuajiaError`` naming the first parameter outside its declared limits."""
    for name, (_, spec) in params(type(instance)).items():
        value = getattr(instance, name)
        if value is None:
            continue
        check_value(name, value, spec)


def check_value(name: str, value: Any, spec: Param) -> None:
    if isinstance(value, bool) or isinstance(value, str) and not spec.choices:
        pass
    elif isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise HuajiaError(f"{name}={value} is not a finite number")
        if (spec.low is not None and value < spec.low) or \
                (spec.high is not None and value > spec.high):
            raise HuajiaError(f"{name}={value} is out of range; use {describe_range(spec)}")
        if spec.multiple_of and value % spec.multiple_of:
            raise HuajiaError(f"{name}={value} is not a multiple of {spec.multiple_of}; use "
                              f"{describe_range(spec)}")
    if spec.choices and value not in spec.choices:
        raise HuajiaError(f"unknown {name} '{value}'; known: {', '.join(spec.choices)}")
    if spec.max_length is not None and isinstance(value, (str, tuple)) and \
            len(value) > spec.max_length:
        unit = "characters" if isinstance(value, str) else "entries"
        raise HuajiaError(f"{name} has {len(value)} {unit}; the limit is {spec.max_length}")


def describe(spec: Param) -> str:
    """The help text with the unit, the range and the choices (CLI help, HTTP descriptions)."""
    text = spec.help
    if spec.unit:
        text += f" In {spec.unit}."
    if spec.high is not None:
        text += f" (range {describe_range(spec)})"
    elif spec.low is not None:
        text += f" (at least {_number(spec.low)})"
    if spec.choices:
        text += f" (one of {', '.join(spec.choices)})"
    for alias, _, unit in spec.scaled_aliases:
        text += f" ({flag(alias)}: the same in {unit})"
    return text


def describe_range(spec: Param) -> str:
    low = _number(spec.low) if spec.low is not None else "-inf"
    high = _number(spec.high) if spec.high is not None else "inf"
    step = f" (a multiple of {spec.multiple_of})" if spec.multiple_of else ""
    return f"{low} to {high}{step}"


def _number(value: float) -> str:
    if value == 2**63 - 1:
        return "2**63-1"
    return f"{value:g}" if isinstance(value, float) else str(value)


def flag(name: str) -> str:
    """The CLI flag of a parameter name: ``negative_prompt`` → ``--negative-prompt``."""
    return "--" + name.replace("_", "-")
