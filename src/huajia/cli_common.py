"""What every huajia command shares: the console, progress bars, a ShapesEval table, the options
built from the vocabulary dataclasses (``vocabulary_options``: one helper for every command) and
the painting commands' helpers (``build_request``, ``open_engine``, ``write_results``,
``--styles-file``). Nothing here imports another ``cli_*`` module."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import types
import typing
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

console = Console()
PROGRESS_COLUMNS = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn())


@contextmanager
def progress_bar(description: str, total: int):
    """A rich progress bar; yields ``advance(k)``."""
    with Progress(*PROGRESS_COLUMNS, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield lambda k=1: progress.advance(task, k)


@contextmanager
def stage_progress():
    """One rich bar per training stage; yields ``progress(stage, done, total)``."""
    with Progress(*PROGRESS_COLUMNS, console=Console(stderr=True)) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)

        yield progress


def print_shapes_result(result) -> None:
    table = Table(title=f"ShapesEval — {result.model}")
    table.add_column("task")
    table.add_column("score", justify="right")
    for task, score in result.tasks.items():
        table.add_row(task, f"{score:.3f}")
    table.add_row("[bold]overall[/]", f"[bold]{result.overall:.3f}[/]")
    for lang, score in result.by_lang.items():
        table.add_row(f"overall ({lang})", f"{score:.3f}")
    console.print(table)


def card_eval(model: str, specs_per_task: int, loras: tuple[str, ...] = ()) -> dict:
    """ShapesEval as a model card records it (``evaluation.shapes_eval.card_shapes_eval``),
    with a progress bar and the table; the card's summary."""
    from huajia.evaluation.shapes_eval import card_pictures, card_shapes_eval

    with progress_bar(f"ShapesEval {model}", card_pictures(specs_per_task)) as advance:
        result = card_shapes_eval(model, specs_per_task, loras, progress=advance)
    print_shapes_result(result)
    return result.summary()


# ---- options from the vocabulary (huajia.params) ----------------------------------------------


def vocabulary_option(cls: type, name: str):
    """The typer option of a vocabulary parameter (``huajia.params``): the canonical flag, its
    aliases (``--cfg`` for ``--guidance``), the declared default, environment variable and help
    with the unit and limits. Limits are enforced by the dataclass itself, so an out-of-range
    value is the same one-line error (exit 2) here as in the Python API and a 400 over HTTP."""
    from huajia.params import describe, flag, params

    field, spec = params(cls)[name]
    names = [name, *spec.aliases]
    if _cli_type(cls, name) is bool:
        flags = [f"{flag(n)}/--no-{n.replace('_', '-')}" for n in names]
    else:
        flags = [flag(n) for n in names] + ([spec.short] if spec.short else [])
    return typer.Option(_cli_default(field, spec), *flags, help=describe(spec), envvar=spec.env,
                        show_default=field.default is not dataclasses.MISSING)


@dataclass(frozen=True)
class Options:
    """Some or all of a vocabulary dataclass's parameters, as one command's options."""

    cls: type
    only: tuple[str, ...] = ()  # these parameters alone (default: every one the CLI takes)
    skip: tuple[str, ...] = ()
    build: bool = True  # False: the command gets ``Given`` and builds the object itself

    def names(self) -> list[str]:
        from huajia.params import params

        declared = [name for name, (_, spec) in params(self.cls).items() if spec.cli]
        unknown = (set(self.only) | set(self.skip)) - set(declared)
        if unknown:
            raise TypeError(f"{self.cls.__name__} declares no CLI parameter {sorted(unknown)}")
        return [n for n in declared if (not self.only or n in self.only) and n not in self.skip]


@dataclass(frozen=True)
class Given:
    """A group's option values (the declared default where none was given) and the names the
    user gave (on the command line or by an environment variable), for a command that builds
    the object itself (a request needs its prompt; a LoRA recipe file yields to typed flags)."""

    values: dict[str, Any]
    typed: frozenset[str]

    def typed_values(self) -> dict[str, Any]:
        return {k: v for k, v in self.values.items() if k in self.typed}


def vocabulary_options(**groups: type | Options) -> Callable:
    """Decorator: the command's parameter NAME receives the dataclass GROUP built from its
    options, one per declared parameter (``@vocabulary_options(recipe=RLRecipe)``). typer sees
    the command's own options followed by the generated ones; a dataclass's errors are the
    usual one-line ``HuajiaError`` (exit 2). Older flags in another unit (``--cache-mb``) are
    converted here; every other alias is a second name of the same option."""
    chosen = {key: g if isinstance(g, Options) else Options(g) for key, g in groups.items()}

    def decorate(command: Callable) -> Callable:
        own = _own_parameters(command, set(chosen))
        context = next((p.name for p in own if _is_context(p.annotation)), None)
        added = [] if context else [inspect.Parameter(
            "vocabulary_context", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)]
        for group in chosen.values():
            for name in group.names():
                added.extend(_option_parameters(group.cls, name))
        everything = own + added
        names = [p.name for p in everything]
        if len(names) != len(set(names)):
            raise TypeError(f"{command.__name__}: two options named "
                            f"{sorted({n for n in names if names.count(n) > 1})}")

        @functools.wraps(command)
        def run(**kwargs: Any) -> Any:
            ctx = kwargs[context] if context else kwargs.pop("vocabulary_context")
            for key, group in chosen.items():
                given = _collect(group, kwargs, ctx)
                kwargs[key] = group.cls(**given.values) if group.build else given
            return command(**kwargs)

        run.__signature__ = inspect.Signature(everything)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in everything}
        run.vocabulary_groups = chosen  # type: ignore[attr-defined]  # for tests
        return run

    return decorate


def _own_parameters(command: Callable, groups: set[str]) -> list[inspect.Parameter]:
    """The command's hand-written parameters, annotations resolved (the group parameters'
    annotations may name classes imported only for type checkers)."""
    own = [p for p in inspect.signature(command).parameters.values() if p.name not in groups]
    holder = type("Annotations", (), {"__annotations__": {
        p.name: command.__annotations__[p.name] for p in own if p.name in command.__annotations__}})
    hints = typing.get_type_hints(holder, globalns=command.__globals__)
    return [p.replace(annotation=hints.get(p.name, p.annotation),
                      kind=inspect.Parameter.KEYWORD_ONLY) for p in own]


def _is_context(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, typer.Context)


def _option_parameters(cls: type, name: str) -> list[inspect.Parameter]:
    """The parameter of one declared field, and one per older name in another unit."""
    from huajia.params import flag, params

    _, spec = params(cls)[name]
    found = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=_cli_type(cls, name),
                               default=vocabulary_option(cls, name))]
    for alias, _, _ in spec.scaled_aliases:
        found.append(inspect.Parameter(
            f"{name}__{alias}", inspect.Parameter.KEYWORD_ONLY, annotation=float | None,
            default=typer.Option(None, flag(alias), hidden=True)))
    return found


def _collect(group: Options, kwargs: dict[str, Any], ctx: typer.Context) -> Given:
    """Take a group's values out of the command's keyword arguments (older units converted,
    files parsed, lists made tuples)."""
    from huajia.params import params, scale

    values, typed = {}, set()
    for name in group.names():
        field, spec = params(group.cls)[name]
        value = kwargs.pop(name)
        source = ctx.get_parameter_source(name)
        if source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT"):
            typed.add(name)
        for alias, factor, _ in spec.scaled_aliases:
            older = kwargs.pop(f"{name}__{alias}")
            if older is not None:
                value = scale(older, factor, field)
                typed.add(name)
        if spec.parse is not None:
            if value is None or value == []:
                continue  # the dataclass's default
            value = spec.parse(value)
        elif isinstance(value, list):
            value = tuple(value)
        values[name] = value
    return Given(values, frozenset(typed))


def _cli_type(cls: type, name: str) -> Any:
    """What the CLI reads for a field: its type without None (a tuple becomes a repeatable
    option), or the declared ``cli_type``."""
    from huajia.params import params

    _, spec = params(cls)[name]
    if spec.cli_type is not None:
        return spec.cli_type
    kind = typing.get_type_hints(cls)[name]
    optional = False
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        parts = [a for a in typing.get_args(kind) if a is not type(None)]
        kind, optional = parts[0], len(parts) < len(typing.get_args(kind))
    if typing.get_origin(kind) is tuple:
        return list[typing.get_args(kind)[0]]
    return kind | None if optional else kind


def _cli_default(field: dataclasses.Field, spec) -> Any:
    if field.default is dataclasses.MISSING:
        return ...
    if spec.parse is not None:
        return None if not isinstance(spec.cli_type, types.GenericAlias) else []
    return list(field.default) if isinstance(field.default, tuple) else field.default


# ---- what the painting commands share --------------------------------------------------------

SIZE_HELP = "WIDTHxHEIGHT, multiples of 8 from 64 to 2048 (default: the model's native size)."
MODEL_HELP = "embedded, a diffusers folder or a hub id."
LORA_HELP = "PATH[:SCALE], repeatable."


def use_styles_file(path: Path | None) -> Path | None:
    """``--styles-file``: the user's styles for this command (as $HUAJIA_STYLES), read now so
    a broken file is a one-line error before any work."""
    from huajia.engine.styles import STYLES_ENV, load_styles

    if path is not None:
        load_styles(path)
        os.environ[STYLES_ENV] = str(path)
    return path


STYLES_FILE = typer.Option(None, "--styles-file", callback=use_styles_file, is_eager=True,
                           help="Your own styles (JSON list of {name, prompt, negative_prompt}); "
                                "same as $HUAJIA_STYLES.")


def build_request(prompt: str, size: str | None, lora: list[str], **fields):
    """The ``GenerationRequest`` the options describe (every check happens here, before a
    model loads)."""
    from huajia.engine.lora import check_lora_paths
    from huajia.engine.request import GenerationRequest, LoraSpec, parse_size

    width, height = parse_size(size) if size else (None, None)
    request = GenerationRequest(prompt, width=width, height=height,
                                loras=tuple(LoraSpec.parse(x) for x in lora), **fields)
    check_lora_paths(request.loras)
    return request


def check_family(name: str | None) -> str | None:
    """``--family``: a name no family has is a one-line error before any model loads."""
    from huajia.engine.loading import check_family as check

    check(name)
    return name


def _family_option():
    """``--family`` of the commands that load a model: ``ServeConfig.family``'s help."""
    from huajia.params import describe, params
    from huajia.serving.config import ServeConfig

    return typer.Option(None, "--family", callback=check_family,
                        help=describe(params(ServeConfig)["family"][1]))


FAMILY = _family_option()


def open_engine(model: str, expander=None, family: str | None = None, load=None):
    """The Engine of ``model`` (``family`` forces its model family: ``--family``; ``load``:
    the ``LoadOptions`` flags, ``--dtype``, ``--quantize``, ``--offload``, …)."""
    from huajia.engine.engine import Engine
    from huajia.world.parser import unknown_words
    from huajia.world.reading import reword

    return Engine(model, vocabulary=unknown_words, reword=reword, expander=expander,
                  family=family, load=load)


def write_results(result, out: Path) -> None:
    """A result's warnings, then its PNGs (infotext inside) under ``out``, one path a line."""
    from huajia.engine.infotext import save_png

    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    for image, seed_used, infotext in zip(result.images, result.seeds, result.infotexts,
                                          strict=True):
        path = free_name(out, seed_used)
        save_png(image, path, infotext)
        console.print(str(path))


def free_name(folder: Path, seed: int) -> Path:
    index = len(list(folder.glob("*.png")))
    while (folder / f"{index:05d}-{seed}.png").exists():
        index += 1
    return folder / f"{index:05d}-{seed}.png"
