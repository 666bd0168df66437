"""Can a painter of the embedded model's kind learn relation words at all? (issue 45)

The embedded painter does not read "left of" / "above" (relation_words.py), and neither a
relation-heavy fine-tune nor mirror pairs taught it. This toy asks whether that is the
architecture or the budget: painters of the same kind (diffusers' UNet2DConditionModel with
cross-attention on a CLIP text transformer, as the embedded model), trained from scratch for the
same CPU minutes on 32 x 32 pictures of two coloured discs and captions such as "a red disc left
of a blue disc", in variants that change one thing each:

- ``plain``: as the embedded model (no absolute position but what the convolutions' padding
  gives; a causal text encoder, so the first-named object cannot see the relation word);
- ``coords``: the same with two coordinate channels (x and y ramps) beside the noisy picture;
- ``bidirectional``: the same with a text encoder whose tokens all see each other.

Judged on held-out colour pairs by where each colour's pixels lie: how often both discs are
drawn, and how often the relation holds when they are (random placement: 0.5).

Run: OMP_NUM_THREADS=1 python benchmarks/relation_toy.py --variant plain --minutes 12
     python benchmarks/relation_toy.py --report   (the table of every finished variant)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from _common import RESULTS, report
from diffusers import DDIMScheduler, UNet2DConditionModel
from rich.progress import Progress
from transformers import CLIPTextConfig, CLIPTextModel

SIDE, RADIUS, WIDTH = 32, 5, 64
COLOURS = {"red": (230, 40, 40), "green": (40, 180, 60), "blue": (40, 70, 230),
           "yellow": (240, 210, 40), "purple": (150, 60, 200), "orange": (245, 140, 30)}
HELD_OUT = {("purple", "orange"), ("orange", "purple")}  # colour pairs never trained on
RELATIONS = {"left of": (0, -1), "right of": (0, 1), "above": (1, -1), "below": (1, 1)}
WORDS = ["<pad>", "<eos>", "a", "disc", "left", "right", "of", "above", "below", *COLOURS]
VARIANTS = ("plain", "coords", "bidirectional")
RUNS = Path("runs/relation_toy")


def scene(rng: np.random.Generator, held_out: bool = False) -> tuple[np.ndarray, str]:
    """A picture of two discs on white and its caption."""
    while True:
        a, b = rng.choice(list(COLOURS), size=2, replace=False)
        if ((a, b) in HELD_OUT) == held_out:
            break
    relation = list(RELATIONS)[int(rng.integers(4))]
    axis, side = RELATIONS[relation]
    centres = rng.uniform(RADIUS + 1, SIDE - RADIUS - 1, size=(2, 2))
    split = rng.uniform(13, 19)
    low, high = (0, 1) if side < 0 else (1, 0)
    centres[low, axis] = rng.uniform(RADIUS + 1, split - RADIUS / 2)
    centres[high, axis] = rng.uniform(split + RADIUS / 2, SIDE - RADIUS - 1)
    return draw([(a, centres[0]), (b, centres[1])]), f"a {a} disc {relation} a {b} disc"


def read_caption(caption: str) -> tuple[str, str, str]:
    """The first colour, the second and the relation of a caption ``scene`` wrote."""
    words = caption.split()
    return words[1], words[-2], " ".join(words[3:-3])


def draw(discs) -> np.ndarray:
    yy, xx = np.mgrid[0:SIDE, 0:SIDE] + 0.5
    picture = np.full((SIDE, SIDE, 3), 255.0)
    for colour, (cx, cy) in discs:
        picture[(xx - cx) ** 2 + (yy - cy) ** 2 <= RADIUS ** 2] = COLOURS[colour]
    return picture / 127.5 - 1.0


def tokens(captions: list[str]) -> torch.Tensor:
    ids = [[WORDS.index(w) for w in c.split()] + [1] for c in captions]
    return torch.tensor([row + [0] * (12 - len(row)) for row in ids])


class Painter(torch.nn.Module):
    def __init__(self, variant: str):
        super().__init__()
        self.variant = variant
        config = CLIPTextConfig(vocab_size=len(WORDS), hidden_size=WIDTH, intermediate_size=4 * WIDTH,
                                num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=12,
                                pad_token_id=0, eos_token_id=1, bos_token_id=0)
        self.text = CLIPTextModel(config)
        self.unet = UNet2DConditionModel(
            sample_size=SIDE, in_channels=5 if variant == "coords" else 3, out_channels=3,
            block_out_channels=(32, 64, 64), layers_per_block=1, cross_attention_dim=WIDTH,
            # attention at 16 x 16 and 8 x 8 (and the 8 x 8 middle), as the embedded model's
            # on its 16 x 16 latents; the 32 x 32 level is convolutions only
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            attention_head_dim=8, norm_num_groups=16)

    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        if self.variant != "bidirectional":
            return self.text(ids).last_hidden_state
        # the same transformer without its causal mask: every token sees the whole caption
        embeddings = self.text.embeddings(input_ids=ids)
        for layer in self.text.encoder.layers:  # no mask: the layers' own is off
            embeddings = layer(embeddings, None)
        return self.text.final_layer_norm(embeddings)

    def forward(self, noisy: torch.Tensor, t: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        if self.variant == "coords":
            ramp = torch.linspace(-1, 1, SIDE)
            grid = torch.stack(torch.meshgrid(ramp, ramp, indexing="xy")).expand(len(noisy), -1, -1, -1)
            noisy = torch.cat([noisy, grid], dim=1)
        return self.unet(noisy, t, text).sample


def train(variant: str, minutes: float, seed: int = 0) -> None:
    torch.manual_seed(seed)
    folder = RUNS / variant
    folder.mkdir(parents=True, exist_ok=True)
    model, scheduler = Painter(variant), _scheduler()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.01)
    state = torch.load(folder / "state.pt", weights_only=False) if (folder / "state.pt").exists() else None
    step, cpu = (state["step"], state["cpu_s"]) if state else (0, 0.0)
    if state:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
    rng = np.random.default_rng([seed, step])
    start, saved = time.process_time() - cpu, time.process_time()
    with Progress() as bar:
        job = bar.add_task(f"{variant} (CPU minutes)", total=minutes, completed=cpu / 60)
        while time.process_time() - start < minutes * 60:
            pictures, captions = zip(*[scene(rng) for _ in range(32)], strict=True)
            captions = ["" if rng.random() < 0.1 else c for c in captions]
            x0 = torch.tensor(np.stack(pictures), dtype=torch.float32).permute(0, 3, 1, 2)
            noise, t = torch.randn_like(x0), torch.randint(0, 1000, (32,))
            loss = F.mse_loss(model(scheduler.add_noise(x0, noise, t), t,
                                    model.encode(tokens(captions))),
                              scheduler.get_velocity(x0, noise, t))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            bar.update(job, completed=(time.process_time() - start) / 60)
            if time.process_time() - saved > 60:
                _save(folder, model, opt, step, time.process_time() - start, loss.item())
                saved = time.process_time()
    _save(folder, model, opt, step, time.process_time() - start, loss.item())


def _scheduler() -> DDIMScheduler:
    # v-prediction on zero-terminal-SNR betas, as the embedded model: an ε-predicting toy left
    # grey backgrounds after 20 CPU minutes (its first steps cannot find the mean colour)
    return DDIMScheduler(num_train_timesteps=1000, prediction_type="v_prediction",
                         rescale_betas_zero_snr=True, timestep_spacing="trailing")


def _save(folder: Path, model, opt, step: int, cpu_s: float, loss: float) -> None:
    tmp = folder / "state.pt.tmp"
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                "cpu_s": cpu_s, "loss": loss}, tmp)
    tmp.replace(folder / "state.pt")  # atomic: a killed run resumes from the last whole file


@torch.no_grad()
def judge(variant: str, pictures_per_caption: int = 8, held_out: bool = True) -> dict:
    """Paint held-out captions (20 DDIM steps, CFG 4) and read where each colour lies."""
    state = torch.load(RUNS / variant / "state.pt", weights_only=False)
    model = Painter(variant).eval()
    model.load_state_dict(state["model"])
    scheduler = _scheduler()
    scheduler.set_timesteps(20)
    rng, held, drawn, total, shown = np.random.default_rng(99), [], 0, 0, []
    for _ in range(16):
        _, caption = scene(rng, held_out)
        a, b, relation = read_caption(caption)
        torch.manual_seed(len(held) + total)
        x = torch.randn(pictures_per_caption, 3, SIDE, SIDE)
        text = model.encode(tokens([caption] * pictures_per_caption + [""] * pictures_per_caption))
        for t in scheduler.timesteps:
            cond, uncond = model(torch.cat([x, x]), t.expand(2 * len(x)), text).chunk(2)
            x = scheduler.step(uncond + 4.0 * (cond - uncond), t, x).prev_sample
        painted = ((x.clamp(-1, 1) + 1) * 127.5).permute(0, 2, 3, 1).numpy()
        shown.append((caption, painted[:4]))
        for picture in painted:
            total += 1
            result = relation_held(picture, a, b, relation)
            if result is not None:
                drawn += 1
                held.append(result)
    sheet(shown[:8], RESULTS / f"relation_toy_{variant}{'' if held_out else '_trained'}.png")
    return {"drawn": drawn / total, "held_given_drawn": float(np.mean(held)) if held else None,
            "pictures": total, "steps": state["step"], "cpu_min": state["cpu_s"] / 60,
            "final_loss": state["loss"]}


def oracle(held_out: bool, pictures: int = 128) -> dict:
    """The judge on the training pictures themselves: its ceiling (discs that touch or overlap
    are not counted as drawn)."""
    rng = np.random.default_rng(99)
    verdicts = []
    for _ in range(pictures):
        picture, caption = scene(rng, held_out)
        verdicts.append(relation_held((picture + 1) * 127.5, *read_caption(caption)))
    held = [v for v in verdicts if v is not None]
    return {"drawn": len(held) / len(verdicts), "held_given_drawn": float(np.mean(held)),
            "pictures": len(verdicts)}


def sheet(shown: list, path: Path) -> None:
    """Captions in rows, four pictures each, at 3x (what the table counts, to look at)."""
    from PIL import Image, ImageDraw

    cell = SIDE * 3
    image = Image.new("RGB", (230 + 4 * cell, len(shown) * cell), "white")
    draw = ImageDraw.Draw(image)
    for row, (caption, pictures) in enumerate(shown):
        draw.text((4, row * cell + cell // 2 - 6), caption, fill="black")
        for k, picture in enumerate(pictures):
            tile = Image.fromarray(picture.round().astype(np.uint8)).resize((cell, cell), Image.NEAREST)
            image.paste(tile, (230 + k * cell, row * cell))
    image.save(path)


def relation_held(picture: np.ndarray, a: str, b: str, relation: str) -> bool | None:
    """Whether ``a`` lies ``relation`` ``b`` (by the centroids of each colour's pixels); None
    when either disc is missing: fewer than a third of a disc's pixels of its colour, or pixels
    spread wider than a disc (noise has every colour everywhere)."""
    # a 3 x 3 box blur first: a disc's inside survives it, the grain a short training leaves
    # between the discs does not
    padded = np.pad(picture, ((1, 1), (1, 1), (0, 0)), mode="edge")
    smooth = sum(padded[dy:dy + SIDE, dx:dx + SIDE] for dy in range(3) for dx in range(3)) / 9
    # each pixel goes to the nearest of the six colours or the picture's own background (its
    # median colour: a short training leaves it grey rather than white)
    palette = np.array([np.median(smooth.reshape(-1, 3), axis=0), *COLOURS.values()], np.float32)
    nearest = np.argmin(((smooth[:, :, None, :] - palette) ** 2).sum(-1), axis=-1)
    centres = []
    for colour in (a, b):
        ys, xs = np.nonzero(nearest == 1 + list(COLOURS).index(colour))
        if len(xs) < np.pi * RADIUS ** 2 / 3 or max(xs.std(), ys.std()) > 0.75 * RADIUS:
            return None
        centres.append((xs.mean(), ys.mean()))
    axis, side = RELATIONS[relation]
    return bool((centres[0][axis] - centres[1][axis]) * side > 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", choices=VARIANTS)
    parser.add_argument("--minutes", type=float, default=12.0, help="CPU minutes of training.")
    parser.add_argument("--report", action="store_true", help="Judge every finished variant.")
    args = parser.parse_args()
    if args.variant:
        train(args.variant, args.minutes)
    if args.report:
        results = {v: {"held-out colours": judge(v), "trained colours": judge(v, held_out=False)}
                   for v in VARIANTS if (RUNS / v / "state.pt").exists()}
        results["the scenes themselves"] = {"held-out colours": oracle(True),
                                            "trained colours": oracle(False)}
        rows = [[v, f"{r['trained colours'].get('steps', '-')}",
                 round(r["trained colours"].get("cpu_min", 0.0), 1),
                 *[x for split in ("trained colours", "held-out colours")
                   for x in (round(r[split]["drawn"], 2), r[split]["held_given_drawn"])]]
                for v, r in results.items()]
        report("relation_toy", "Can a small UNet learn relation words? (32 px discs)",
               ["variant", "steps", "CPU min", "drawn", "relation held", "drawn (held-out)",
                "relation held (held-out)"], rows, {"results": results, "chance": 0.5})
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
