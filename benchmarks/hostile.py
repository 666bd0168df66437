"""A hostile client against a real `huajia serve`: the battery of issue 28's classes (0 answers
≥ 500, each refused as expected), issue 46's round two (``_hostile_round2``: what is painted,
the budget's refusal times, validation gaps, wide bodies beside /health, the readable 429, a
full store, tenants, DELETE, keyed provenance, re-encoding), schemathesis over the whole API, the
worst request the cost budget still accepts (peak RSS and wall time), /health and job-status
latency with 100 generations in flight from four client addresses, the prompt filter's rates
per language, and kill -9.

    python benchmarks/hostile.py [--model embedded] [--load-seconds 30] [--skip-pytest]
→ benchmarks/results/hostile.json
"""

from __future__ import annotations

import argparse
import base64
import io
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
from _common import Server, report
from _hostile_round2 import round_two
from filter_sets import blocked_set, measure, read
from PIL import Image

ROOT = Path(__file__).parents[1]
MAX_COST = 300.0  # huajia serve's default --max-cost


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("1", (width, height)).save(out, "PNG")
    return out.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _cases(url: str) -> list[tuple[str, str, str, dict, set[int]]]:
    """(name, method, path, httpx kwargs, statuses that count as handled correctly)."""
    gen = "/v1/images/generations"
    big_png = _b64(_png(20000, 20000))
    return [
        ("666 BREAKs", "POST", gen, {"json": {"prompt": " BREAK ".join(["a"] * 667)}}, {400}),
        ("weight nan", "POST", gen, {"json": {"prompt": "(circle:nan)"}}, {400}),
        ("weight 1e309", "POST", gen, {"json": {"prompt": "(circle:1e309)"}}, {400}),
        ("500-deep nesting", "POST", gen, {"json": {"prompt": "(" * 500 + "circle" + ")" * 500}}, {400}),
        ("zero-width prompt", "POST", gen, {"json": {"prompt": "\u200b\u200c\u200d\ufeff"}}, {400}),
        ("over the cost budget", "POST", gen, {"json": {"prompt": " BREAK ".join(["a red circle"] * 8),
                                                        "n": 10, "steps": 150}}, {400}),
        ("thinking over budget", "POST", gen, {"json": {"prompt": "a red circle", "think": True, "n": 10,
                                                        "steps": 150, "max_repaints": 20}}, {400, 422}),
        ("n=1000", "POST", gen, {"json": {"prompt": "a red circle", "n": 1000}}, {400, 422}),
        ("seed 2**63-1, n=2", "POST", gen, {"json": {"prompt": "a red circle", "n": 2, "steps": 2,
                                                     "seed": 2**63 - 1}}, {200, 400}),
        ("size 7x7", "POST", gen, {"json": {"prompt": "a red circle", "size": "7x7"}}, {400}),
        ("unknown model", "POST", gen, {"json": {"prompt": "a red circle", "model": "../../etc"}},
         {400, 404}),
        ("LoRA traversal", "POST", gen, {"json": {"prompt": "a red circle", "loras": ["../../x"]}}, {400}),
        ("obfuscated blocked prompt", "POST", gen, {"json": {"prompt": "a nudе (Cyrillic е) figure"}}, {400}),
        ("pinyin blocked prompt", "POST", gen, {"json": {"prompt": "luo ti tupian"}}, {400}),
        ("not JSON", "POST", gen, {"content": b"{oops", "headers": {"content-type": "application/json"}},
         {400, 422}),
        ("100 MB body", "POST", gen, {"content": b"x" * (100 * 1024**2),
                                      "headers": {"content-type": "application/json"}}, {413}),
        ("20000² PNG verify", "POST", "/v1/provenance/verify", {"json": {"image": big_png}}, {400}),
        ("13000² PNG verify", "POST", "/v1/provenance/verify", {"json": {"image": _b64(_png(13000, 13000))}},
         {400}),
        ("not an image verify", "POST", "/v1/provenance/verify",
         {"json": {"image": _b64(b"GIF89a" + b"\0" * 50)}}, {400}),
        ("file traversal", "GET", "/v1/images/files/..%2F..%2Fjobs.sqlite", {}, {400, 403, 404}),
        ("unsigned file", "GET", "/v1/images/files/0123456789abcdef.png", {}, {401, 403, 404}),
        ("unknown job", "GET", "/v1/jobs/nope", {}, {404}),
        ("unknown route", "GET", "/v2/everything", {}, {404}),
        ("wrong method", "DELETE", "/health", {}, {405}),
        ("docs key reflected", "GET", "/docs?key=%3Cscript%3Ealert(1)%3C/script%3E", {}, {200, 401, 404}),
        ("unknown model id", "GET", "/v1/models/nope", {}, {404}),
    ]


def _openai_shaped(response: httpx.Response) -> bool:
    try:
        error = response.json().get("error", {})
    except ValueError:
        return False
    return isinstance(error, dict) and {"message", "type"} <= error.keys()


def battery(server: Server) -> dict:
    rows, leaks = [], []
    with httpx.Client(base_url=server.url, timeout=120) as client:
        for name, method, path, kwargs, expected in _cases(server.url):
            response = client.request(method, path, **kwargs)
            text = response.text
            shaped = response.status_code < 400 or _openai_shaped(response)
            if server.data in text or str(ROOT) in text or "<script>alert" in text:
                leaks.append(name)
            if name.startswith("seed") and response.status_code == 200:
                seeds = [d["seed"] for d in response.json()["data"]]
                shaped = all(0 <= s < 2**63 for s in seeds)
            rows.append({"case": name, "status": response.status_code, "expected": sorted(expected),
                         "ok": response.status_code in expected and shaped})
    rows += _slow_clients(server)
    return {"cases": rows, "server_errors": sum(r["status"] >= 500 for r in rows),
            "unexpected": [r["case"] for r in rows if not r["ok"]], "leaks": leaks}


def _raw(server: Server, sent: bytes, wait: float = 30) -> int:
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait) as sock:
        sock.sendall(sent)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(data.split()[1]) if data else 0


def _slow_clients(server: Server) -> list[dict]:
    rows = []
    for name, sent in (("idle connection", b""), ("slow headers", b"GET /health HTTP/1.1\r\nHost: x\r\n"),
                       ("slow body", b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\ncontent-type: application/json"
                                     b"\r\ncontent-length: 100\r\n\r\n{\"prompt\"")):
        start = time.monotonic()
        status = _raw(server, sent)
        rows.append({"case": name, "status": status, "expected": [408], "ok": status == 408,
                     "closed_after_s": round(time.monotonic() - start, 2)})
    held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(64)]
    try:
        time.sleep(0.2)
        status = _raw(server, b"")
    finally:
        for sock in held:
            sock.close()
    rows.append({"case": "65th connection from one address", "status": status, "expected": [429],
                 "ok": status == 429})
    return rows


class PeakRss:
    """Samples a process's resident memory every 20 ms while it runs."""

    def __init__(self, pid: int):
        self.process, self.peak, self.stop = psutil.Process(pid), 0, threading.Event()
        self.start = self.process.memory_info().rss

    def __enter__(self):
        def sample():
            while not self.stop.is_set():
                self.peak = max(self.peak, self.process.memory_info().rss)
                time.sleep(0.02)

        self.thread = threading.Thread(target=sample, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def worst_accepted(server: Server) -> list[dict]:
    """The costliest requests the default budget accepts (its cost in megapixel-steps as the
    server counts it: 128² painted × steps × 2 × prompt chunks × n × thinking's passes)."""
    from huajia.serving.budget import job_cost, think_factor
    from huajia.thinking.options import ThinkOptions

    breaks = " BREAK ".join(["a red circle"] * 6)  # 6 chunks
    think = {"max_repaints": 2, "restarts": 2, "compose_tries": 1}
    options = ThinkOptions(**think)
    bodies = [
        ("plain default", {"prompt": "a red circle"}, job_cost((128, 128), 20, 1, 1, None)),
        ("n 10 × 150 steps × 6 chunks, 2048² out",
         {"prompt": breaks, "n": 10, "steps": 150, "size": "2048x2048"},
         job_cost((128, 128), 150, 10, 6, None)),
        ("thinking, n 4 × 150 steps", {"prompt": "two red circles", "think": True, "n": 4,
                                       "steps": 150, **think}, job_cost((128, 128), 150, 4, 1, options)),
    ]
    rows = []
    for name, body, cost in bodies:
        assert cost <= MAX_COST, (name, cost, think_factor(options))
        with PeakRss(server.proc.pid) as rss:
            start = time.perf_counter()
            response = httpx.post(f"{server.url}/v1/images/generations", json={**body, "seed": 5},
                                  timeout=1800)
            wall = time.perf_counter() - start
        rows.append({"request": name, "status": response.status_code, "cost": round(cost, 1),
                     "wall_s": round(wall, 1),
                     "peak_rss_increase_mb": round((rss.peak - rss.start) / 2**20, 1)})
        print(rows[-1], flush=True)
    return rows


def _timed_get(client: httpx.Client, path: str) -> float:
    start = time.perf_counter()
    client.get(path).raise_for_status()
    return (time.perf_counter() - start) * 1000


def under_load(model: str, seconds: float) -> dict:
    """100 synchronous generations in flight (25 from each of 127.0.0.2-5), while another
    client polls /health, a job's status and the web page."""
    with Server(model, []) as server:
        job = httpx.post(f"{server.url}/v1/jobs", json={"prompt": "a blue star", "seed": 1}).json()["id"]
        codes: list[int] = []

        def generate(k: int) -> None:
            transport = httpx.HTTPTransport(local_address=f"127.0.0.{2 + k % 4}")
            try:
                with httpx.Client(transport=transport, timeout=seconds + 120) as client:
                    response = client.post(f"{server.url}/v1/images/generations",
                                           json={"prompt": "a red circle", "seed": 1000 + k})
                told_to_return = (response.status_code == 503 and
                                  response.json()["error"]["code"] == "server_shutting_down")
                codes.append(0 if told_to_return else response.status_code)
            except httpx.HTTPError:
                codes.append(-1)  # cut off when the server stops: not an answer

        threads = [threading.Thread(target=generate, args=(k,), daemon=True) for k in range(100)]
        for thread in threads:
            thread.start()
        time.sleep(3)  # all 100 connected and queued
        health, status, page = [], [], []
        with httpx.Client(base_url=server.url, timeout=30) as client:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                health.append(_timed_get(client, "/health"))
                status.append(_timed_get(client, f"/v1/jobs/{job}"))
                page.append(_timed_get(client, "/"))
                time.sleep(0.05)
            in_flight = 100 - len(codes)
    for thread in threads:  # the stop answered them; let the answers land
        thread.join(timeout=30)
    pct = lambda xs, q: statistics.quantiles(xs, n=100)[q - 1] if len(xs) > 2 else max(xs)  # noqa: E731
    return {"samples": len(health), "in_flight_at_end": in_flight,
            "health_p50_ms": statistics.median(health), "health_p99_ms": pct(health, 99),
            "job_status_p50_ms": statistics.median(status), "job_status_p99_ms": pct(status, 99),
            "web_page_p99_ms": pct(page, 99), "finished_during": len([c for c in codes if c == 200]),
            # at the stop, waiting clients are told (503 server_shutting_down) where their saved
            # job's result will be; any other answer ≥ 500 is a bug
            "told_job_saved_at_stop": codes.count(0), "cut_off": codes.count(-1),
            "server_errors": len([c for c in codes if c >= 500])}


def filter_rates() -> dict:
    from huajia.evaluation.prompts import shapes_eval_prompts
    from huajia.serving.safety import PromptFilter

    prompt_filter = PromptFilter()
    committed = read("filter_blocked.txt")
    fresh = [p for seed in range(100, 105) for p in blocked_set(seed, 300)]
    innocent = read("filter_innocent.txt")
    world = [p.text for p in shapes_eval_prompts(100)]
    blocked = lambda ps: sum(not prompt_filter.check(p).allowed for p in ps) / len(ps)  # noqa: E731
    return {"obfuscated_committed": {"n": len(committed), "blocked_rate": blocked(committed)},
            "obfuscated_fresh_seeds": {"n": len(fresh), "blocked_rate": blocked(fresh)},
            "innocent_lookalikes": {"n": len(innocent), "pass_rate": 1 - blocked(innocent)},
            "world_prompts": {"n": len(world), "pass_rate": 1 - blocked(world)}}


def pytest_checks() -> dict:
    results = {}
    kill_9 = "tests/serving/test_live.py::test_kill_9_with_jobs_queued_loses_nothing"
    for name, target in (("schemathesis", "tests/serving/test_schemathesis.py"), ("kill_9", kill_9)):
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:warnings", target],
                              cwd=ROOT, capture_output=True, text=True, timeout=1200)
        results[name] = {"passed": done.returncode == 0, "summary": done.stdout.strip().splitlines()[-1]}
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--load-seconds", type=float, default=30)
    parser.add_argument("--skip-pytest", action="store_true")
    args = parser.parse_args()
    filters = filter_rates()
    languages = measure()
    with Server(args.model, ["--header-timeout-s", "2"]) as server:
        hostile = battery(server)
        worst = worst_accepted(server)
    import tempfile

    second = round_two(args.model, tempfile.mkdtemp(prefix="huajia-loras-"))
    load = under_load(args.model, args.load_seconds)
    hostile["server_errors"] += load["server_errors"] + second["server_errors"]
    checks = pytest_checks() if not args.skip_pytest else {}
    rows = [["answers ≥ 500 (battery and load)", hostile["server_errors"], "0"],
            ["battery cases not refused as expected", len(hostile["unexpected"]), "0"],
            ["server paths / markup leaked", len(hostile["leaks"]), "0"]]
    rows += [[f"worst accepted: {w['request']} (cost {w['cost']}/{MAX_COST:g})",
              f"{w['wall_s']} s, +{w['peak_rss_increase_mb']} MB", f"status {w['status']}"] for w in worst]
    rows += [["/health p50 / p99, 100 in flight (ms)",
              f"{load['health_p50_ms']:.1f} / {load['health_p99_ms']:.1f}", "p99 ≤ 100"],
             ["job status p50 / p99 (ms)",
              f"{load['job_status_p50_ms']:.1f} / {load['job_status_p99_ms']:.1f}", "p99 ≤ 100"],
             ["web page p99 (ms)", f"{load['web_page_p99_ms']:.1f}", "fast"]]
    rows += [[f"filter: {k} (n={v['n']})", f"{v.get('blocked_rate', v.get('pass_rate')):.3f}",
              "1.000"] for k, v in filters.items()]
    rows += [[f"round 2: {r['case']}", f"{r['status']}" + (f" in {r['seconds']} s" if "seconds"
              in r else ""), "/".join(map(str, r["expected"]))] for r in second["cases"]]
    rows += [[f"filter {lang}: block / false positives",
              f"{row.get('block_rate', float('nan')):.3f} / {row.get('fp_rate', float('nan')):.3f}",
              "≥ 0.9 / ≤ 0.02"] for lang, row in languages.items()]
    rows += [[f"pytest {k}", v["summary"], "passed"] for k, v in checks.items()]
    report("hostile", "huajia serve against hostile clients", ["check", "result", "goal"], rows,
           {"battery": hostile, "round_two": second, "worst_accepted": worst, "under_load": load,
            "filter": filters, "filter_languages": languages,
            "pytest": checks, "model": args.model})


if __name__ == "__main__":
    main()
