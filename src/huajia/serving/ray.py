"""huajia on Ray Serve: the same FastAPI app (routes, keys, limits, safety, provenance, page)
as an ingress deployment, and a model deployment whose replicas each own an Engine.

The ingress keeps what must be durable and single: the SQLite job queue, the content-addressed
cache and the result files (``data_dir``, on a volume that outlives its pod). Its worker claims
jobs as on one machine but keeps ``in_flight`` of them at the model replicas at once
(``RayPainter``); a replica's ``@serve.batch`` joins the calls that arrive together and paints
the compatible ones in one pipeline call. A replica that dies under a job raises
``PainterLost``: the job goes back to the queue and runs again, and the queue's claim token
keeps it from completing twice. Step progress and thoughts do not cross Ray (the event stream
gets running/done).

``build_app(args)`` is a Ray Serve application builder: ``huajia serve --ray`` calls it, and so
do ``serve run huajia.serving.ray:build_app`` and the config files in docs/ray/.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from ray import serve
from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError

from huajia.engine.facts import ModelFacts
from huajia.errors import HuajiaError, refuse_unknown
from huajia.params import canonical
from huajia.serving.config import CriticSettings, ServeConfig
from huajia.serving.jobs import JobSpec, LoraFolder
from huajia.serving.painter import LocalPainter, PainterLost, Pictures

MODEL, INGRESS = "Model", "Ingress"  # deployment names (a config file's deployments: refer to them)
_DEPLOYMENT_KEYS = ("num_replicas", "autoscaling_config", "ray_actor_options",
                    "max_ongoing_requests", "max_queued_requests", "health_check_period_s",
                    "health_check_timeout_s", "graceful_shutdown_timeout_s")


# a replica takes as many calls as @serve.batch can join (Ray Serve's default is 5)
MODEL_DEFAULTS = {"num_replicas": 1, "ray_actor_options": {"num_cpus": 1},
                  "max_ongoing_requests": 16}
INGRESS_DEFAULTS = {"num_replicas": 1, "ray_actor_options": {"num_cpus": 0}}


def _with_defaults(options: dict, defaults: dict) -> dict:
    """A deployment's options over the defaults (a fixed count only without an autoscaler)."""
    merged = {**defaults, **options}
    if "autoscaling_config" in options and "num_replicas" not in options:
        merged.pop("num_replicas")
    return merged


@dataclass(frozen=True)
class RaySettings:
    """How the application is laid out on the cluster (``--ray-config FILE.yaml``)."""

    model: dict = field(default_factory=lambda: dict(MODEL_DEFAULTS))
    ingress: dict = field(default_factory=lambda: dict(INGRESS_DEFAULTS))
    max_batch_size: int = 8  # @serve.batch on a model replica
    batch_wait_timeout_s: float = 0.05
    in_flight: int = 8  # jobs the ingress keeps at the model replicas at once
    threads: int | None = None  # torch threads per model replica (None: its num_cpus)

    @classmethod
    def from_dict(cls, data: dict | None) -> RaySettings:
        data = dict(data or {})
        refuse_unknown(data, {f.name for f in dataclasses.fields(cls)}, "Ray setting")
        for name in ("model", "ingress"):
            refuse_unknown(data.get(name) or {}, _DEPLOYMENT_KEYS, f"{name} deployment option",
                           "Ray Serve deployment options")
        for name, defaults in (("model", MODEL_DEFAULTS), ("ingress", INGRESS_DEFAULTS)):
            data[name] = _with_defaults(data.get(name) or {}, defaults)
        settings = cls(**{k: v for k, v in data.items() if v is not None})
        if settings.in_flight < 1 or settings.max_batch_size < 1:
            raise HuajiaError("in_flight and max_batch_size must be at least 1")
        return settings

    @classmethod
    def from_yaml(cls, path: str | Path) -> RaySettings:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as error:
            raise HuajiaError(f"cannot read Ray config '{path}': {error.strerror}") from None
        except yaml.YAMLError as error:
            raise HuajiaError(f"Ray config '{path}' is not valid YAML: "
                              f"{str(error).splitlines()[0]}") from None
        if data is not None and not isinstance(data, dict):
            raise HuajiaError(f"Ray config '{path}' must be a mapping of settings")
        return cls.from_dict(data)

    def replica_threads(self) -> int:
        cpus = (self.model.get("ray_actor_options") or {}).get("num_cpus", 1)
        return self.threads or max(1, int(cpus))


def config_to_args(config: ServeConfig) -> dict:
    """A ServeConfig as the plain values a Ray config file's ``args`` hold."""
    args = {}
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        if value != item.default:
            args[item.name] = str(value) if isinstance(value, Path) else \
                [list(v) if isinstance(v, tuple) else v for v in value] \
                if isinstance(value, tuple) else value
    return args


def config_from_args(args: dict) -> ServeConfig:
    args = canonical(ServeConfig, args)  # older names (wildcards_dir, cache_mb) too
    fields = {f.name: f for f in dataclasses.fields(ServeConfig)}
    refuse_unknown(args, fields, "server setting")
    values = {}
    for name, value in args.items():
        kind = str(fields[name].type)
        if "Path" in kind and value is not None:
            value = Path(value)
        elif "tuple" in kind and value is not None:
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        values[name] = value
    return ServeConfig(**values)


class ModelReplica:
    """One Engine in a Ray actor. Calls that arrive together are joined by ``@serve.batch``
    and painted one compatible group at a time (the pipeline is not thread-safe)."""

    def __init__(self, config_args: dict, threads: int, max_batch_size: int,
                 batch_wait_timeout_s: float):
        import torch

        from huajia.engine.engine import Engine
        from huajia.serving.painted import GuardedExpander
        from huajia.world.parser import unknown_words
        from huajia.world.reading import reword

        torch.set_num_threads(threads)
        config = config_from_args(config_args)
        expander = GuardedExpander(config.expander(), config.prompt_filter())
        engine = Engine(config.model, vocabulary=unknown_words, reword=reword, expander=expander,
                        family=config.family, load=config.load_options())
        expander.facts = engine.facts
        self.painter = LocalPainter(engine, CriticSettings(config))
        self.painter.warm_up()
        self.loras = LoraFolder(config.lora_dir)
        self.lock = asyncio.Lock()
        self._batched.set_max_batch_size(max_batch_size)
        self._batched.set_batch_wait_timeout_s(batch_wait_timeout_s)

    def facts(self) -> ModelFacts:
        return self.painter.facts

    def pid(self) -> int:
        return os.getpid()

    async def generate(self, payload: dict) -> Pictures:
        return await self._batched(payload)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.05)
    async def _batched(self, payloads: list[dict]) -> list[Pictures]:
        specs = [JobSpec.from_payload(p, self.loras) for p in payloads]
        groups: dict[str, list[int]] = {}
        for index, spec in enumerate(specs):
            groups.setdefault(spec.batch_key(), []).append(index)
        out: list[Any] = [None] * len(specs)
        async with self.lock:
            for indices in groups.values():
                painted = await asyncio.to_thread(self.painter.generate,
                                                  [specs[i] for i in indices])
                for index, pictures in zip(indices, painted, strict=True):
                    out[index] = pictures
        return out

    async def run(self, payload: dict) -> Pictures:
        """An edit, a variation or a thinking job: alone."""
        spec = JobSpec.from_payload(payload, self.loras)
        async with self.lock:
            return await asyncio.to_thread(self.painter.run, spec)


class RayPainter:
    """The service's painter when the model lives in Ray Serve replicas."""

    streams_progress = False

    def __init__(self, handle, in_flight: int):
        self.handle, self.concurrency = handle, in_flight
        self._facts: ModelFacts | None = None

    @property
    def facts(self) -> ModelFacts:
        if self._facts is None:
            self._facts = self._result(self.handle.facts.remote())
        return self._facts

    def warm_up(self) -> None:
        """The replicas warm themselves up as they start."""

    def generate(self, specs: list[JobSpec], on_step=None) -> list[Pictures]:
        responses = [self.handle.generate.remote(spec.to_payload()) for spec in specs]
        return [self._result(response) for response in responses]

    def edit(self, spec: JobSpec) -> Pictures:
        return self._result(self.handle.run.remote(spec.to_payload()))

    def think(self, spec: JobSpec, on_thought=None) -> Pictures:
        return self._result(self.handle.run.remote(spec.to_payload()))

    @staticmethod
    def _result(response):
        try:
            return response.result()
        except (RayActorError, ActorUnavailableError) as error:
            raise PainterLost(f"model replica lost: {type(error).__name__}") from None
        except RayTaskError as error:  # the replica's own error, as if raised here
            raise (error.cause or error) from None


def _ingress_app(config_args: dict, in_flight: int):
    """Runs in each ingress replica: the app, its service painting through the replicas."""
    from huajia.serving.app import create_app
    from huajia.serving.service import ImageService

    config = config_from_args(config_args)
    handle = serve.get_deployment_handle(MODEL, serve.get_replica_context().app_name)
    service = ImageService(config, painter_factory=lambda _: RayPainter(handle, in_flight))
    return create_app(config, service)


def build_app(args: dict):
    """Ray Serve application builder. ``args``: the server settings (``ServeConfig`` names,
    e.g. ``data_dir``, ``model``, ``api_keys``) and ``ray`` (``RaySettings``)."""
    args = dict(args)
    settings = RaySettings.from_dict(args.pop("ray", None))
    config_args = config_to_args(config_from_args(args))  # checked here, not in a replica
    model = serve.deployment(ModelReplica, name=MODEL).options(**settings.model).bind(
        config_args, settings.replica_threads(), settings.max_batch_size,
        settings.batch_wait_timeout_s)
    asgi = serve.ingress(lambda: _ingress_app(config_args, settings.in_flight))
    ingress = serve.deployment(asgi(), name=INGRESS).options(**settings.ingress)
    return ingress.bind(model)


def serve_on_ray(config: ServeConfig, settings: RaySettings, address: str, host: str,
                 port: int, name: str = "huajia") -> float:
    """Deploy the application on the cluster at ``address``; returns the seconds it took
    until every replica was ready."""
    import time

    from huajia.ray_cluster import connect

    connect(address)
    started = time.perf_counter()
    serve.start(http_options={"host": host, "port": port})
    serve.run(build_app({**config_to_args(config), "ray": dataclasses.asdict(settings)}),
              name=name, route_prefix="/")
    return time.perf_counter() - started
