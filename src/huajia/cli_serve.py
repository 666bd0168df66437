"""``huajia serve`` and ``huajia detect``: the image service's commands (kept apart from cli.py
so each file stays readable). ``register(app)`` adds them to the main typer app."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from huajia.cli_common import STYLES_FILE, vocabulary_options
from huajia.serving.config import ServeConfig

console = Console()


@vocabulary_options(config=ServeConfig)
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="TCP port."),
    styles_file: Path = STYLES_FILE,
    ray: str = typer.Option(None, "--ray", help="Serve on Ray Serve: 'local' (start Ray here), "
                            "'auto', HOST:PORT or ray://HOST:PORT (docs/ray.md)."),
    ray_config: Path = typer.Option(None, "--ray-config", help="YAML: replicas, autoscaling, "
                                    "batching of the Ray deployments (docs/ray/ray-config.yaml)."),
    *,
    config: ServeConfig,
) -> None:
    """Serve the OpenAI-compatible image API, the job API and the web page."""
    import uvicorn

    from huajia.engine.loading import resolve_model
    from huajia.serving.app import create_app
    from huajia.serving.connections import server_config

    resolve_model(config.model)  # a wrong path is one line now, not a traceback at startup
    if config.llm_url:  # a chat model that cannot be reached at all is a one-line error now
        config.expander().strict_copy().check("llm", "probe")
    if ray or ray_config:
        _serve_on_ray(config, ray or "local", ray_config, host, port)
        return
    console.print(f"huajia serving {config.model} on http://{host}:{port} "
                  f"(data in {config.data_dir})")
    uvicorn.Server(server_config(create_app(config), config, host, port, log_level="warning")).run()


def _serve_on_ray(config, address: str, settings_file: Path | None, host: str, port: int) -> None:
    import signal
    import time

    from huajia.ray_cluster import require_ray

    ray = require_ray()
    from ray import serve

    from huajia.serving.ray import RaySettings, serve_on_ray

    settings = RaySettings.from_yaml(settings_file) if settings_file else RaySettings()
    seconds = serve_on_ray(config, settings, address, host, port)
    console.print(f"huajia serving {config.model} on Ray Serve at http://{host}:{port} "
                  f"(ready in {seconds:.1f} s; data in {config.data_dir}); Ctrl-C stops it")

    def stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)  # a stop leaves no Ray processes behind
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        serve.shutdown()
        ray.shutdown()


def detect(image: Path = typer.Argument(..., help="A picture to check (PNG, JPEG, WebP)."),
           watermark_key: str = typer.Option(None, "--watermark-key", envvar="HUAJIA_WATERMARK_KEY",
                                             help="The key the pictures were marked with."),
           watermark_key_file: Path = typer.Option(None, "--watermark-key-file", help="A file "
                                                   "holding it (a server's: "
                                                   "DATA_DIR/watermark-key).")) -> None:
    """Was this picture made by huajia? Reads the invisible watermark (and the infotext)."""
    from huajia.drawing import load_image
    from huajia.errors import HuajiaError
    from huajia.serving.provenance import check_provenance, read_key_file

    if not watermark_key and not watermark_key_file:
        raise HuajiaError("give the key the pictures were marked with: --watermark-key KEY or "
                          "--watermark-key-file FILE (a server's is DATA_DIR/watermark-key)")
    key = watermark_key or read_key_file(watermark_key_file)
    result = check_provenance(load_image(image), key)
    verdict = "made by huajia" if result.made_here else "not made by huajia (no watermark found)"
    console.print(f"{image}: {verdict} — watermark score {result.watermark_score:.3f} "
                  f"(threshold {result.threshold}); infotext: "
                  f"{'huajia' if result.infotext_says_huajia else 'none'}", highlight=False,
                  soft_wrap=True)
    raise typer.Exit(0 if result.made_here else 1)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("detect")(detect)
