"""One vocabulary: a parameter has the same name, default and limit in the CLI, the HTTP API
and the Python API. This test fails if any surface drifts from the dataclass that declares it."""

from __future__ import annotations

import dataclasses

import pytest
import typer
from pydantic import ValidationError
from typer.testing import CliRunner

from huajia.cli import app
from huajia.cli_common import FAMILY, vocabulary_options
from huajia.curation.runner import FilterOptions
from huajia.engine.expansion import ExpansionOptions
from huajia.engine.loading import LoadOptions
from huajia.engine.request import GenerationRequest
from huajia.errors import HuajiaError
from huajia.params import canonical, flag, params
from huajia.serving.config import DEFAULT_ALIASES, ServeConfig
from huajia.serving.schemas import ImageGenerationBody
from huajia.thinking.options import CriticOptions, ThinkOptions
from huajia.training.recipes import BaseRecipe, LoraRecipe
from huajia.training.rl.recipe import RLRecipe

COMMANDS = {GenerationRequest: ("generate", "think"), ThinkOptions: ("think",),
            LoadOptions: ("generate", "think")}
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


HTTP_CASES = [(cls, name, field, spec) for cls in (GenerationRequest, ThinkOptions, CriticOptions)
              for name, (field, spec) in params(cls).items() if spec.http]


@pytest.mark.parametrize("cls,name,field,spec", HTTP_CASES,
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
    # over HTTP the body takes any spelling (A1111's, ComfyUI's) and the request refuses it
    # with a 400 before anything is queued (tests/serving/test_jobs.py)
    assert ImageGenerationBody(prompt="x", scheduler="DPM++ 2M Karras").scheduler
    over = CliRunner().invoke(app, ["generate", "x", "--scheduler", "dpm_fast", "--out",
                                    str(tmp_path)]).exception
    assert "unknown scheduler" in str(over)


def test_vocabulary_dataclasses_are_frozen_and_keyword_only():
    for cls in COMMANDS:
        with pytest.raises(dataclasses.FrozenInstanceError):
            cls(**({"prompt": "x"} if cls is GenerationRequest else {})).steer = 1
    with pytest.raises(TypeError):
        GenerationRequest("x", "negative")  # only the prompt is positional


# ---- every command's options come from the declarations (cli_common.vocabulary_options) ----

# the commands that take a whole dataclass as their options (others take a chosen few)
WHOLE = {GenerationRequest: {"generate", "think"}, ThinkOptions: {"think"},
         CriticOptions: {"think", "compare"}, ExpansionOptions: {"generate", "think"},
         BaseRecipe: {"train base"}, LoraRecipe: {"train lora"}, RLRecipe: {"train rl"},
         ServeConfig: {"serve"}, FilterOptions: {"curate"},
         LoadOptions: {"generate", "think", "compare", "series", "edit", "batch", "eval shapes",
                       "eval model"}}


def _callbacks(typer_app=app, prefix=()):
    """(command path, the function typer calls) for every command, subcommands too."""
    for info in typer_app.registered_commands:
        yield " ".join((*prefix, info.name or info.callback.__name__)), info.callback
    for group in typer_app.registered_groups:
        yield from _callbacks(group.typer_instance, (*prefix, group.name))


GROUPS = [(path, group) for path, callback in _callbacks()
          for group in getattr(callback, "vocabulary_groups", {}).values()]
OPTION_CASES = [(path, group.cls, name) for path, group in GROUPS for name in group.names()]


def _options(path: str) -> dict:
    command = typer.main.get_command(app)
    for part in path.split():
        command = command.commands[part]
    return {p.name: p for p in command.params}


def test_each_dataclass_is_the_options_of_its_commands():
    whole: dict[type, set[str]] = {}
    for path, group in GROUPS:
        if not group.only and not group.skip:
            whole.setdefault(group.cls, set()).add(path)
    for cls, commands in WHOLE.items():
        assert commands <= whole.get(cls, set()), (cls.__name__, commands, whole.get(cls))


@pytest.mark.parametrize("path,cls,name", OPTION_CASES,
                         ids=lambda v: v if isinstance(v, str) else v.__name__)
def test_every_declared_field_is_an_option_with_its_default_and_env(path, cls, name):
    field, spec = params(cls)[name]
    options = _options(path)
    option = options[name]
    assert flag(name) in option.opts, (path, option.opts)
    assert {flag(a) for a in spec.aliases} <= set(option.opts + option.secondary_opts)
    assert option.envvar == spec.env, (path, name)
    if field.default is dataclasses.MISSING:
        assert option.required
    elif spec.parse is not None:  # a file or a list the command reads: omitted, the default
        assert option.default in (None, [])
        assert option.default is None or spec.parse(option.default) == field.default
    else:
        got = tuple(option.default) if isinstance(field.default, tuple) else option.default
        assert got == field.default, (path, name)
    for alias, _, _ in spec.scaled_aliases:
        assert flag(alias) in options[f"{name}__{alias}"].opts


def test_the_vlm_key_comes_from_the_environment_wherever_a_critic_does():
    for path in ("think", "compare", "train rl", "serve"):
        assert _options(path)["vlm_key"].envvar == "HUAJIA_VLM_KEY", path


def test_older_flags_in_another_unit_are_converted(tmp_path):
    seen = {}

    @vocabulary_options(config=ServeConfig)
    def probe(*, config) -> None:
        seen["config"] = config

    probe_app = typer.Typer()
    probe_app.command()(probe)
    probe_app.command("other")(lambda: None)
    args = ["probe", "--cache-mb", "2", "--images-mb", "0.5", "--batch-wait-ms", "30",
            "--header-timeout", "3", "--wildcards-dir", str(tmp_path), "--model-alias", "a=b"]
    result = CliRunner().invoke(probe_app, args)
    assert result.exit_code == 0, result.output
    config = seen["config"]
    assert (config.cache_max_bytes, config.images_max_bytes) == (2 * 1024**2, 512 * 1024)
    assert config.batch_wait_s == pytest.approx(0.03)
    assert (config.header_timeout_s, config.wildcards) == (3.0, tmp_path)
    assert config.model_aliases == (*DEFAULT_ALIASES, ("a", "b"))
    # a config file's (Ray's args) older names and units too
    assert canonical(ServeConfig, {"cache_mb": 2, "batch_wait_ms": 50, "wildcards_dir": "w"}) == \
        {"cache_max_bytes": 2 * 1024**2, "batch_wait_s": 0.05, "wildcards": "w"}


def test_the_critic_has_one_name_and_reward_is_its_alias():
    recipe = RLRecipe(critic="clip")
    assert recipe.critic == "clip" and recipe.to_dict()["critic"] == "clip"
    assert "reward" not in recipe.to_dict()  # one name in the records too
    assert canonical(RLRecipe, {"reward": "vlm"}) == {"critic": "vlm"}
    assert ImageGenerationBody(prompt="x", reward="clip").critic == "clip"
    for path in ("think", "compare", "train rl", "batch"):
        assert {"--critic", "--reward"} <= set(_options(path)["critic"].opts), path
    with pytest.raises(HuajiaError, match="unknown critic 'beauty'"):
        RLRecipe(critic="beauty")


def test_no_command_lists_more_than_about_ten_options_by_hand():
    import inspect

    for path, callback in _callbacks():
        own = inspect.signature(getattr(callback, "__wrapped__", callback)).parameters
        hand = [p for p in own if p not in getattr(callback, "vocabulary_groups", {})
                and own[p].default is not FAMILY]  # --family: ServeConfig's declaration
        assert len(hand) <= 11, (path, hand)  # the rest come from the declarations
