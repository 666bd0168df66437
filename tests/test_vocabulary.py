"""One vocabulary: a parameter has the same name, default and limit in the CLI, the HTTP API
and the Python API. This test fails if any surface drifts from the dataclass that declares it."""

from __future__ import annotations

import dataclasses

import pytest
import typer
from pydantic import ValidationError
from typer.testing import CliRunner

from huajia.cli import app
from huajia.engine.request import GenerationRequest
from huajia.errors import HuajiaError
from huajia.params import flag, params
from huajia.serving.schemas import ImageGenerationBody
from huajia.thinking.options import ThinkOptions

COMMANDS = {GenerationRequest: ("generate", "think"), ThinkOptions: ("think",)}
CASES = [(cls, name, field, spec) for cls in COMMANDS
         for name, (field, spec) in params(cls).items()]


def _command(name: str):
    return typer.main.get_command(app).commands[name]


@pytest.mark.parametrize("cls,name,field,spec", [c for c in CASES if c[3].cli],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_cli_options_are_the_dataclass_fields(cls, name, field, spec):
    for command in COMMANDS[cls]:
        options = {p.name: p for p in _command(command).params}
        assert name in options, f"huajia {command} has no option for '{name}'"
        option = options[name]
        assert flag(name) in option.opts, (command, option.opts)
        assert {flag(a) for a in spec.aliases} <= set(option.opts + option.secondary_opts)
        assert option.default == field.default, (command, name)


@pytest.mark.parametrize("cls,name,field,spec", [c for c in CASES if c[3].http],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_http_fields_are_the_dataclass_fields(cls, name, field, spec):
    body = ImageGenerationBody.model_fields[name]
    assert body.default == field.default
    limits = {type(m).__name__: m for m in body.metadata}
    assert getattr(limits.get("Ge"), "ge", None) == spec.low
    assert getattr(limits.get("Le"), "le", None) == spec.high
    aliases = body.validation_alias.choices if body.validation_alias else [name]
    assert aliases == [name, *spec.aliases]


def _too_high(spec):
    return spec.high + (1 if isinstance(spec.high, int) else 0.5)


RANGED = [c for c in CASES if c[3].high is not None]


@pytest.mark.parametrize("cls,name,field,spec", RANGED,
                         ids=lambda v: v if isinstance(v, str) else "")
def test_every_surface_refuses_the_same_values(cls, name, field, spec, tmp_path):
    base = {"prompt": "a red circle"} if cls is GenerationRequest else {}
    make = (lambda **kw: cls(base["prompt"], **kw)) if base else cls
    make(**{name: spec.high})
    make(**{name: spec.low})
    with pytest.raises(HuajiaError, match=name):
        make(**{name: _too_high(spec)})
    if spec.http:
        ImageGenerationBody(prompt="x", **{name: spec.high})
        with pytest.raises(ValidationError, match=name):
            ImageGenerationBody(prompt="x", **{name: _too_high(spec)})
    if spec.cli:
        for command in COMMANDS[cls]:
            at_limit = _run(command, name, spec.high, tmp_path)
            assert "no model at" in str(at_limit), (command, name, at_limit)
            over = _run(command, name, _too_high(spec), tmp_path)
            assert isinstance(over, HuajiaError) and name in str(over), (command, name, over)


def _run(command: str, name: str, value, tmp_path):
    args = [command, "a red circle", flag(name), str(value), "--model",
            str(tmp_path / "no-model"), "--out", str(tmp_path / "out")]
    return CliRunner().invoke(app, args).exception


def test_aliases_reach_the_same_field(tmp_path):
    body = ImageGenerationBody(prompt="x", cfg=7.5, repaints=2, negative="blurry")
    assert (body.guidance, body.max_repaints, body.negative_prompt) == (7.5, 2, "blurry")
    over = CliRunner().invoke(app, ["generate", "x", "--cfg", "31", "--model", "none",
                                    "--out", str(tmp_path)]).exception
    assert "guidance=31.0" in str(over)


def test_unknown_scheduler_is_refused_everywhere(tmp_path):
    with pytest.raises(HuajiaError, match="unknown scheduler"):
        GenerationRequest("x", scheduler="dpm_fast")
    with pytest.raises(ValidationError):
        ImageGenerationBody(prompt="x", scheduler="dpm_fast")
    over = CliRunner().invoke(app, ["generate", "x", "--scheduler", "dpm_fast", "--out",
                                    str(tmp_path)]).exception
    assert "unknown scheduler" in str(over)


def test_vocabulary_dataclasses_are_frozen_and_keyword_only():
    for cls in COMMANDS:
        with pytest.raises(dataclasses.FrozenInstanceError):
            cls(**({"prompt": "x"} if cls is GenerationRequest else {})).steer = 1
    with pytest.raises(TypeError):
        GenerationRequest("x", "negative")  # only the prompt is positional
