"""Joining a Ray cluster, shared by ``serve --ray``, ``batch --ray`` and ``curate --ray``: Ray
is an optional extra, and an address that cannot be reached is one clear line, not a hang."""

from __future__ import annotations

import socket

from huajia.errors import HuajiaError

ADDRESS_HELP = ("Ray cluster: 'local' (start one on this machine), 'auto' (the one 'ray start' "
                "runs here), HOST:PORT or ray://HOST:PORT.")


def require_ray():
    try:
        import ray
    except ImportError:
        raise HuajiaError("Ray is not installed; pip install 'huajia[ray]'") from None
    return ray


def connect(address: str, num_cpus: int | None = None):
    """``ray`` connected to ``address`` (a no-op when this process already is)."""
    ray = require_ray()
    if address not in ("local", "auto"):
        _probe(address)  # even when this process is already connected: a wrong address is wrong
    if ray.is_initialized():
        return ray
    try:
        ray.init(address=None if address == "local" else address, include_dashboard=False,
                 num_cpus=num_cpus if address == "local" else None, log_to_driver=False,
                 configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise HuajiaError(f"cannot join the Ray cluster at '{address}' ({first[:200]}); start "
                          "one with 'ray start --head', or pass --ray local") from None
    return ray


def _probe(address: str) -> None:
    """Fail in seconds when nothing listens at the address (ray.init would retry a minute)."""
    client = address.startswith("ray://")
    rest = address.removeprefix("ray://")
    host, _, port = rest.rpartition(":") if ":" in rest else (rest, "", "")
    try:
        port_number = int(port) if port else (10001 if client else 6379)
    except ValueError:
        raise HuajiaError(f"Ray address '{address}' is not HOST:PORT or ray://HOST:PORT") from None
    try:
        socket.create_connection((host or "127.0.0.1", port_number), timeout=3).close()
    except OSError as error:
        raise HuajiaError(f"cannot reach the Ray cluster at '{address}' ({error.strerror or error}); "
                          "start one with 'ray start --head', or pass --ray local") from None
