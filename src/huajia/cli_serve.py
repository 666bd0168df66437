"""``huajia serve`` and ``huajia detect``: the image service's commands (kept apart from cli.py
so each file stays readable). ``register(app)`` adds them to the main typer app."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from huajia.cli_finish import STYLES_FILE

console = Console()


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="TCP port."),
    model: str = typer.Option("embedded", help="embedded, a diffusers folder or a hub id."),
    data_dir: Path = typer.Option(Path("huajia-data"), "--data-dir",
                                  help="Queue, cache and result images live here."),
    api_keys: Path = typer.Option(None, "--api-keys", help="File with one API key per line."),
    rate: float = typer.Option(2.0, help="Requests per second per API key."),
    burst: int = typer.Option(20, help="Requests a key may send at once."),
    max_batch: int = typer.Option(8, "--max-batch", help="Micro-batch size."),
    batch_wait_ms: float = typer.Option(50, "--batch-wait-ms",
                                        help="How long a job may wait for batch company."),
    cache_mb: int = typer.Option(1024, "--cache-mb", help="Result cache size cap."),
    max_cost: float = typer.Option(300.0, "--max-cost", help="Megapixel-steps one request may "
                                   "cost (size x steps x 2 x prompt chunks x n x thinking's "
                                   "passes); more is a 400 before any work."),
    max_connections_per_client: int = typer.Option(
        64, "--max-connections-per-client", help="Connections one address may hold at once."),
    header_timeout: float = typer.Option(10.0, "--header-timeout", help="Seconds a connection "
                                         "has to send its request headers (idle, slowloris)."),
    images_mb: int = typer.Option(1024, "--images-mb",
                                  help="Cap of the result files behind url responses."),
    nsfw: str = typer.Option("blur", help="Image safety policy: blur, refuse or off."),
    lora_dir: Path = typer.Option(None, "--lora-dir", help="Folder of LoRAs clients may name."),
    clip_model: str = typer.Option(None, help="Local CLIP checkpoint: lets thinking jobs use "
                                              "critic 'clip'."),
    vlm_url: str = typer.Option(None, help="OpenAI-compatible base URL: lets thinking jobs "
                                           "use critic 'vlm' (with --vlm-model)."),
    vlm_model: str = typer.Option(None, help="Model name at --vlm-url."),
    vlm_key: str = typer.Option(None, envvar="HUAJIA_VLM_KEY", help="API key for --vlm-url."),
    wildcards: Path = typer.Option(None, "--wildcards", envvar="HUAJIA_WILDCARDS",
                                   help="Wildcard folder for expand 'wildcards' (default: built in)."),
    llm_url: str = typer.Option(None, "--llm-url", help="OpenAI-compatible base URL: lets "
                                "requests use expand 'llm' (with --llm-model)."),
    llm_model: str = typer.Option(None, "--llm-model", help="Model name at --llm-url."),
    llm_key: str = typer.Option(None, "--llm-key", envvar="HUAJIA_LLM_KEY", help="API key for --llm-url."),
    styles_file: Path = STYLES_FILE,
    ray: str = typer.Option(None, "--ray", help="Serve on Ray Serve: 'local' (start Ray here), "
                            "'auto', HOST:PORT or ray://HOST:PORT (docs/ray.md)."),
    ray_config: Path = typer.Option(None, "--ray-config", help="YAML: replicas, autoscaling, "
                                    "batching of the Ray deployments (docs/ray/ray-config.yaml)."),
    model_alias: list[str] = typer.Option(
        [], "--model-alias", help="NAME=MODEL: serve requests for NAME with MODEL (repeatable; "
                                  "dall-e-2, dall-e-3 and gpt-image-1 mean the served model)."),
) -> None:
    """Serve the OpenAI-compatible image API, the job API and the web page."""
    import uvicorn

    from huajia.engine.loading import resolve_model
    from huajia.serving.app import create_app
    from huajia.serving.config import ServeConfig, parse_aliases, read_api_keys
    from huajia.serving.connections import server_config

    resolve_model(model)  # a wrong path is one line now, not a traceback at startup

    config = ServeConfig(data_dir=data_dir, model=model,
                         api_keys=read_api_keys(api_keys) if api_keys else (), rate=rate,
                         burst=burst, max_batch=max_batch, batch_wait_s=batch_wait_ms / 1000,
                         cache_max_bytes=cache_mb * 1024**2,
                         images_max_bytes=images_mb * 1024**2, max_cost=max_cost, nsfw=nsfw,
                         lora_dir=lora_dir,
                         clip_model=clip_model, vlm_url=vlm_url, vlm_model=vlm_model,
                         vlm_key=vlm_key, model_aliases=parse_aliases(model_alias),
                         max_connections_per_client=max_connections_per_client,
                         header_timeout_s=header_timeout, wildcards_dir=wildcards,
                         llm_url=llm_url, llm_model=llm_model, llm_key=llm_key)
    if llm_url:  # a chat model that cannot be reached at all is a one-line error now
        config.expander().strict_copy().check("llm", "probe")
    if ray or ray_config:
        _serve_on_ray(config, ray or "local", ray_config, host, port)
        return
    console.print(f"huajia serving {model} on http://{host}:{port} (data in {data_dir})")
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


def detect(image: Path = typer.Argument(..., help="A picture to check (PNG, JPEG, WebP).")) -> None:
    """Was this picture made by huajia? Reads the invisible watermark (and the infotext)."""
    from huajia.drawing import load_image
    from huajia.serving.provenance import verify

    result = verify(load_image(image))
    verdict = "made by huajia" if result.made_here else "not made by huajia (no watermark found)"
    console.print(f"{image}: {verdict} — watermark score {result.watermark_score:.3f} "
                  f"(threshold {result.threshold}); infotext: "
                  f"{'huajia' if result.infotext_says_huajia else 'none'}", highlight=False,
                  soft_wrap=True)
    raise typer.Exit(0 if result.made_here else 1)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("detect")(detect)
