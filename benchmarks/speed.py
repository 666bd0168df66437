"""Speed, side by side in one run: plain diffusers at its defaults vs huajia doing the same work
vs huajia's defaults (s/image at batch 1, images/s at batch 8), the UNet's achieved FLOP/s
against this machine's matmul rate, what each CPU trick buys (measured, kept or not), and
start-up. ShapesEval per setting comes from the sampler sweep (``speed_sweep.py``, same
held-out pictures), thinking's price from ``thinking_price.py``.

    python benchmarks/speed.py [--repeats 5]
→ benchmarks/results/speed.json
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch
from _common import RESULTS, report

from huajia.engine.engine import Engine
from huajia.engine.parallel import SplitBatch
from huajia.engine.request import GenerationRequest

PROMPT = "two red circles left of a blue square"


def _best(fn, repeats: int) -> float:
    for _ in range(2):  # warm-up (TorchScript optimises a new shape after two runs)
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _plain(engine: Engine, batch: int):
    def run():
        generators = [torch.Generator().manual_seed(i) for i in range(batch)]
        engine.pipe.scheduler = type(engine.pipe.scheduler).from_config(engine.base_scheduler_config)
        engine.pipe(PROMPT, num_inference_steps=20, guidance_scale=5.0,
                    num_images_per_prompt=batch, generator=generators)
    return run


def _huajia(engine: Engine, batch: int, **fields):
    return lambda: engine.generate(GenerationRequest(PROMPT, seed=0, n=batch, **fields))


def _sweep_score(setting: str) -> dict | None:
    """ShapesEval of a setting from the sweep (and its confirmation run, when there is one)."""
    for name in ("speed_confirm", "speed_sweep"):
        path = RESULTS / f"{name}.json"
        if path.is_file():
            found = json.loads(path.read_text()).get("results", {}).get(setting)
            if found:
                return {**found, "source": name}
    return None


def _setting(request: GenerationRequest, scheduler: str) -> str:
    cutoff = f":{request.cfg_cutoff:g}" if request.cfg_cutoff < 1 else ""
    return f"{request.scheduler or scheduler}:{request.steps}:{request.guidance:g}{cutoff}"


def generation_rows(model: str, repeats: int) -> tuple[list, dict]:
    """Plain diffusers, huajia's engine doing the same work eagerly (what the request seam
    costs), and huajia's defaults (frozen trace, batch split across the cores)."""
    eager = Engine(model, split_batch=False, trace=False)
    fast = Engine(model)
    fast.warm_up()
    defaults = GenerationRequest(PROMPT)
    same = {"steps": 20, "guidance": 5.0, "scheduler": "model"}
    own = "ddim"  # the embedded model's own scheduler
    settings = [("plain diffusers, 20 DDIM, CFG 5", eager, None, "ddim:20:5"),
                ("huajia, same work, eager", eager, same, "ddim:20:5"),
                ("huajia defaults (trace + split)", fast, {}, _setting(defaults, own))]
    rows, out = [], {}
    plain_bs1 = plain_bs8 = None
    for label, engine, fields, setting in settings:
        one = _best(_plain(engine, 1) if fields is None else _huajia(engine, 1, **fields), repeats)
        eight = _best(_plain(engine, 8) if fields is None else _huajia(engine, 8, **fields),
                      max(2, repeats // 2))
        plain_bs1, plain_bs8 = plain_bs1 or one, plain_bs8 or eight
        score = _sweep_score(setting)
        out[label] = {"setting": setting, "s_per_image_bs1": one, "images_per_s_bs8": 8 / eight,
                      "speedup_bs1": plain_bs1 / one, "speedup_bs8": plain_bs8 / eight,
                      "shapes_eval": score}
        rows.append([label, setting, round(one, 3), round(8 / eight, 2),
                     "?" if score is None else f"{score['overall']:.3f} ({score['n_images']})",
                     f"{plain_bs1 / one:.2f} / {plain_bs8 / eight:.2f}"])
        print(rows[-1], flush=True)
    return rows, out


def matmul_rate(dtype: torch.dtype, side: int = 1024) -> float:
    a, b = torch.randn(side, side, dtype=dtype), torch.randn(side, side, dtype=dtype)
    seconds = _best(lambda: a @ b, 10 if dtype == torch.float32 else 2)
    return 2 * side ** 3 / seconds


def unet_efficiency(engine: Engine, repeats: int) -> tuple[list, dict]:
    from torch.utils.flop_counter import FlopCounterMode

    unet = engine.denoiser
    latent = unet.config.sample_size
    width = unet.config.cross_attention_dim

    def inputs(batch):
        return (torch.randn(batch, 4, latent, latent), torch.full((batch,), 500),
                torch.randn(batch, 77, width))

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        unet(*inputs(1))
    flop = counter.get_total_flops()
    rows, out = [], {"gflop_per_image": flop / 1e9}
    threads = torch.get_num_threads()
    for count in sorted({1, threads}):
        torch.set_num_threads(count)
        rate = matmul_rate(torch.float32)
        for batch in (2, 16):
            x = inputs(batch)
            with torch.inference_mode():
                seconds = _best(lambda x=x: unet(*x), repeats)
            achieved = flop * batch / seconds
            out[f"threads{count}_bs{batch}"] = {"seconds": seconds, "flop_s": achieved,
                                                "matmul_flop_s": rate, "ratio": achieved / rate}
            rows.append([f"UNet fp32, batch {batch}, {count} thread(s)", round(seconds * 1000, 1),
                         round(achieved / 1e9, 1), round(rate / 1e9, 1), round(achieved / rate, 2)])
    torch.set_num_threads(threads)
    out["bf16_matmul_flop_s"] = matmul_rate(torch.bfloat16, 256)
    out["fp32_matmul_flop_s"] = matmul_rate(torch.float32)
    rows.append(["matmul bf16 vs fp32 (GFLOP/s)", "", round(out["bf16_matmul_flop_s"] / 1e9, 1),
                 round(out["fp32_matmul_flop_s"] / 1e9, 1),
                 round(out["bf16_matmul_flop_s"] / out["fp32_matmul_flop_s"], 3)])
    return rows, out


def tricks(engine: Engine, repeats: int) -> tuple[list, dict]:
    """Each CPU trick on the UNet at the CFG batch of one picture (2) and of a micro-batch of
    8 (16): time and the largest change of the output against plain fp32."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    unet = engine.denoiser
    latent, width = unet.config.sample_size, unet.config.cross_attention_dim
    rows, out = [], {}

    def measure(label, model, batch, context=None, channels_last=False):
        generator = torch.Generator().manual_seed(batch)
        x = (torch.randn(batch, 4, latent, latent, generator=generator), torch.full((batch,), 500),
             torch.randn(batch, 77, width, generator=generator))
        sample = x[0].to(memory_format=torch.channels_last) if channels_last else x[0]
        with torch.inference_mode(), context or _nothing():
            seconds = _best(lambda: model(sample, *x[1:]), repeats)
            got = model(sample, *x[1:]).sample.float()
        with torch.inference_mode():
            want = unet(*x).sample
        out[f"{label} bs{batch}"] = {"seconds": seconds, "max_diff": float((got - want).abs().max())}
        return seconds

    for batch in (2, 16):
        base = measure("fp32", unet, batch)
        rows.append([f"fp32 (flash SDPA), batch {batch}", round(base * 1000, 1), "1.00", 0.0, "kept"])
        for label, model, context, kept in [
                ("channels-last", copy.deepcopy(unet).to(memory_format=torch.channels_last), None, "no"),
                ("SDPA math kernel", unet, sdpa_kernel([SDPBackend.MATH]), "no"),
                ("bf16 autocast", unet, torch.autocast("cpu", torch.bfloat16), "no")]:
            if label == "bf16 autocast" and out.get("bf16 slow"):
                continue
            seconds = measure(label, model, batch, context, label == "channels-last")
            if label == "bf16 autocast" and seconds > 3 * base:
                out["bf16 slow"] = True  # no bf16 units here: skip the batch-16 run
            diff = out[f"{label} bs{batch}"]["max_diff"]
            rows.append([f"{label}, batch {batch}", round(seconds * 1000, 1),
                         f"{base / seconds:.2f}", round(diff, 4), kept])
            print(rows[-1], flush=True)
        seconds = measure("frozen trace", unet, batch, _Attached(unet, SplitBatch(1, trace=True)))
        diff = out[f"frozen trace bs{batch}"]["max_diff"]
        rows.append([f"frozen TorchScript trace, batch {batch}", round(seconds * 1000, 1),
                     f"{base / seconds:.2f}", round(diff, 6), "kept"])
        print(rows[-1], flush=True)
        if torch.get_num_threads() > 1:  # the batch in parts on the cores vs torch's threads
            split = _Attached(unet, SplitBatch(torch.get_num_threads()))
            seconds = measure("split across cores", unet, batch, split)
            diff = out[f"split across cores bs{batch}"]["max_diff"]
            rows.append([f"batch split across {split.hook.workers} cores, batch {batch}",
                         round(seconds * 1000, 1), f"{base / seconds:.2f}", round(diff, 6),
                         "kept"])
            print(rows[-1], flush=True)
    return rows, out


class _Attached:
    """The engine's CPU hook (``SplitBatch``) on ``unet`` while inside: the frozen trace made
    at the first call, or the batch split across the cores."""

    def __init__(self, unet, hook: SplitBatch):
        self.unet, self.hook = unet, hook
        if hook.traces is not None:
            hook.traces.trace_next()

    def __enter__(self):
        self.hook.attach(self.unet)
        return self

    def __exit__(self, *exc):
        self.hook.close()
        return False


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def compiled(engine: Engine, repeats: int) -> dict:
    """torch.compile (inductor) on the UNet: compile time and steady-state time at batch 2."""
    unet = engine.denoiser
    latent, width = unet.config.sample_size, unet.config.cross_attention_dim
    x = (torch.randn(2, 4, latent, latent), torch.full((2,), 500), torch.randn(2, 77, width))
    model = torch.compile(copy.deepcopy(unet))
    with torch.inference_mode():
        start = time.perf_counter()
        model(*x)
        compile_s = time.perf_counter() - start
        seconds = _best(lambda: model(*x), repeats)
        plain = _best(lambda: unet(*x), repeats)
    return {"compile_s": compile_s, "seconds": seconds, "plain_seconds": plain,
            "speedup": plain / seconds}


def start_up(model: str) -> dict:
    start = time.perf_counter()
    engine = Engine(model)
    loaded = time.perf_counter() - start
    request = GenerationRequest(PROMPT, seed=0)
    start = time.perf_counter()
    engine.generate(request)
    first = time.perf_counter() - start
    start = time.perf_counter()
    engine.generate(request)
    second = time.perf_counter() - start
    return {"load_s": loaded, "first_image_s": first, "second_image_s": second}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="Also time torch.compile "
                        "(about two minutes of compiling).")
    args = parser.parse_args()
    boot = start_up(args.model)
    traced = Engine(args.model)
    start = time.perf_counter()
    traced.warm_up()
    boot["warm_up_with_trace_s"] = time.perf_counter() - start
    del traced
    engine = Engine(args.model, split_batch=False, trace=False)
    gen_rows, gen = generation_rows(args.model, args.repeats)
    unet_rows, unet = unet_efficiency(engine, args.repeats)
    trick_rows, trick = tricks(engine, args.repeats)
    if args.compile:
        trick["torch.compile bs2"] = found = compiled(engine, args.repeats)
        trick_rows.append(["torch.compile, batch 2", round(found["seconds"] * 1000, 1),
                           f"{found['speedup']:.2f}", f"compile {found['compile_s']:.0f} s", "no"])
    report("speed_unet", "UNet achieved FLOP/s vs matmul FLOP/s (fp32)",
           ["setting", "ms/call", "GFLOP/s", "matmul GFLOP/s", "ratio"], unet_rows, unet)
    report("speed_tricks", "CPU tricks on the UNet (ms per call, speed-up, max output change)",
           ["trick", "ms", "speed-up", "max |diff|", "kept"], trick_rows, trick)
    thinking = RESULTS / "thinking_price.json"
    report("speed", f"Speed ({args.model}, {torch.get_num_threads()} threads)",
           ["setting", "scheduler:steps:cfg[:cutoff]", "s/image (bs 1)", "images/s (bs 8)",
            "ShapesEval (pictures)", "vs plain diffusers (bs 1 / bs 8)"], gen_rows,
           {"generation": gen, "unet": unet, "tricks": trick, "start_up": boot,
            "threads": torch.get_num_threads(),
            "thinking": json.loads(thinking.read_text()) if thinking.is_file() else None})
    print("start-up:", {k: round(v, 2) for k, v in boot.items()})


if __name__ == "__main__":
    main()
