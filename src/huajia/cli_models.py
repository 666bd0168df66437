"""``huajia models``: what huajia makes of a model (its family, sizes, prediction, samplers and
features), as a table or as JSON. ``register(app)`` adds it to the main typer app."""

from __future__ import annotations

import json
import sys

import typer
from rich.table import Table

from huajia.cli_common import FAMILY, MODEL_HELP, console, open_engine


def models(
    model: str = typer.Argument("embedded", metavar="PATH", help=MODEL_HELP),
    family: str = FAMILY,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Load a model and show its family, pipeline, native size, size multiple, prediction,
    samplers and features (what GET /v1/models says of a served one)."""
    engine = open_engine(model, family=family)
    facts = engine.facts
    if as_json:
        record = {"model": facts.name, "hash": facts.model_hash, **facts.describe}
        sys.stdout.write(json.dumps(record, ensure_ascii=False, indent=2) + "\n")
        return
    console.print(model_table(facts.name, facts.model_hash, facts.describe))


def model_table(name: str, model_hash: str, described: dict) -> Table:
    """``Family.describe``'s facts as two columns."""
    table = Table(title=f"{name} ({model_hash})", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", overflow="fold")
    window = described.get("prompt_window")
    features = ", ".join(f"{key.replace('_', ' ')} {'✓' if on else '✗'}"
                         for key, on in described["features"].items())
    for label, value in (
            ("family", described["family"]), ("label", described["label"]),
            ("pipeline", described["pipeline"]),
            ("native size", f"{described['native_size']} px"),
            ("size multiple", f"{described['size_multiple']} px"),
            ("prediction", described["prediction"]),
            ("samplers", ", ".join(described["samplers"])),
            ("prompt window", f"{window} tokens a chunk" if window else "one fixed length"),
            ("features", features)):
        table.add_row(label, str(value))
    return table


def register(app: typer.Typer) -> None:
    app.command("models")(models)
