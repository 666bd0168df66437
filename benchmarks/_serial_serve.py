"""huajia's app served the way AUTOMATIC1111 serves: one request at a time behind one lock, no
micro-batching, no cache. Only the serving benchmark needs this comparison, so it lives here.

    python benchmarks/_serial_serve.py --model M --port P --data-dir D
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import uvicorn

from huajia.serving.app import create_app
from huajia.serving.config import ServeConfig


def serial_app(config: ServeConfig):
    app = create_app(config)
    lock = asyncio.Lock()

    @app.middleware("http")
    async def one_at_a_time(request, call_next):
        if not request.url.path.startswith("/v1/images/generations"):
            return await call_next(request)
        async with lock:
            return await call_next(request)

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--data-dir", default="huajia-serial-data")
    parser.add_argument("--nsfw", default="blur")
    args = parser.parse_args()
    config = ServeConfig(data_dir=Path(args.data_dir), model=args.model, max_batch=1,
                         batch_wait_s=0.0, cache_max_bytes=0, nsfw=args.nsfw, rate=1e5,
                         burst=100_000)
    uvicorn.run(serial_app(config), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
