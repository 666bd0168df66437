"""The one request vocabulary: every user-facing parameter has one name, one default, one limit
and one help text, declared once on a frozen dataclass (``GenerationRequest``, ``ThinkOptions``).

``param(...)`` puts that declaration in the dataclass field's metadata; ``check(self)`` enforces
the limits in ``__post_init__``; the CLI (typer options) and the HTTP schema (pydantic fields)
are built from the same metadata, so the three surfaces cannot drift apart. This module imports
nothing heavy: it is read at import time of the CLI and the server.
"""

from __future__ import annotations

import dataclasses
import math
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


def param(default: Any = dataclasses.MISSING, **meta: Any) -> Any:
    """A dataclass field declared with its ``Param`` (help, limits, aliases)."""
    return dataclasses.field(default=default, metadata={"param": Param(**meta)})


def params(cls: type) -> dict[str, tuple[dataclasses.Field, Param]]:
    """The declared parameters of a vocabulary dataclass, in declaration order."""
    return {f.name: (f, f.metadata["param"]) for f in dataclasses.fields(cls)
            if "param" in f.metadata}


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
