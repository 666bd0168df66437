"""Shared helpers for benchmark scripts: machine facts, a rich table, a JSON file."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results"


def machine() -> dict:
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "python": platform.python_version()}


def report(name: str, title: str, columns: list[str], rows: list[list], extra: dict) -> Path:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row])
    console = Console()
    (console if console.is_terminal else Console(width=220)).print(table)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    data = {"machine": machine(), "columns": columns, "rows": rows, **extra}
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    print(f"wrote {path}")
    return path


def _port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A real ``huajia serve`` process (or the single-lock baseline, ``serial``) on a free port,
    with rate limits lifted unless ``extra`` sets its own."""

    def __init__(self, model: str, extra: list[str], serial: bool = False,
                 env: dict | None = None):
        self.port, self.data = _port(), tempfile.mkdtemp(prefix="huajia-bench-")
        self.url = f"http://127.0.0.1:{self.port}"
        where = ["--port", str(self.port), "--data-dir", self.data, "--nsfw", "blur"]
        if serial:
            command = [sys.executable, str(Path(__file__).parent / "_serial_serve.py"),
                       "--model", model, *where]
        else:
            limits = [] if "--rate" in extra else ["--rate", "100000", "--burst", "100000"]
            command = [sys.executable, "-m", "huajia", "serve", "--model", model, *where,
                       *limits, *extra]
        self.log = Path(self.data) / "server.log"  # a file: a pipe nobody reads fills and blocks
        with self.log.open("wb") as log:
            self.started = time.perf_counter()
            self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log,
                                         env={**os.environ, **(env or {})})

    def __enter__(self):
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(self.log.read_text(errors="replace")[-2000:])
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    self.ready_s = time.perf_counter() - self.started  # start to first health
                    return self
            except httpx.HTTPError:
                time.sleep(0.3)
        raise RuntimeError("server did not start")

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # the queue is durable: nothing acknowledged is lost
            self.proc.wait()
