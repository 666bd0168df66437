"""``huajia batch``: here and on Ray Data the same bytes; a killed run resumes with every
picture written once; bad lines are named by number and the rest still run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from huajia.batch.lines import read_lines
from huajia.batch.runner import BatchOutput, BatchSettings, run_batch


def _prompts(path, count=12, think=False):
    words = ["a red circle", "two blue squares", "一个绿色的三角形", "a yellow star"]
    lines = [{"prompt": words[k % 4], "seed": k, "steps": 2, "n": 1 + k % 2} for k in range(count)]
    if count > 3:
        lines[3]["size"] = "64x64"
    if think:
        lines[1].update(think=True, size="64x64", n=1)  # thinks: plans, looks, repaints
    path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines))
    return path


def _folder(out):
    pictures = {p.name: p.read_bytes() for p in (out / "images").iterdir()}
    rows = sorted((out / "metadata.jsonl").read_text().splitlines())
    return pictures, rows


def test_twelve_lines_here_and_on_ray_are_bit_identical(tmp_path, sd_dir, ray_cluster):
    lines, errors = read_lines(_prompts(tmp_path / "p.jsonl", think=True))
    assert not errors and len(lines) == 12
    settings = BatchSettings(str(sd_dir), threads=1)
    here = run_batch(lines, tmp_path / "here", settings)
    on_ray = run_batch(lines, tmp_path / "ray", settings, ray_address="local", workers=2)
    assert here.written == on_ray.written == 17
    pictures, rows = _folder(tmp_path / "here")
    assert (pictures, rows) == _folder(tmp_path / "ray")
    row = json.loads(rows[0])
    assert row["file_name"].startswith("images/") and row["text"] and "Steps: 2" in row["infotext"]
    thought = next(json.loads(r) for r in rows if json.loads(r)["think"])
    assert thought["line"] == 2 and "Think options" in thought["infotext"]
    again = run_batch(lines, tmp_path / "ray", settings, ray_address="local", workers=2)
    assert again.written == 0 and again.skipped_lines == 12


# ``huajia batch`` that stops where a kill hurts most, however fast the machine paints: four
# pictures written, the fifth on disk without its metadata row. It says so in a file, then
# waits to be killed.
HELD_BATCH = """
import os, sys, threading
from pathlib import Path
from huajia.batch import runner

marker, sys.argv = Path(sys.argv[1]), ["huajia", *sys.argv[2:]]
write, written = runner.BatchOutput.write, []

def held(self, name, data, row):
    if len(written) == 4:
        (self.folder / name).write_bytes(data)
        marker.with_suffix(".tmp").write_text(name)
        os.replace(marker.with_suffix(".tmp"), marker)
        threading.Event().wait()
    write(self, name, data, row)
    written.append(name)

runner.BatchOutput.write = held
from huajia.cli import main
main()
"""


def test_a_killed_run_resumes_and_writes_each_picture_once(tmp_path, sd_dir):
    prompts = _prompts(tmp_path / "p.jsonl", 10)
    out, marker = tmp_path / "out", tmp_path / "held"
    arguments = ["batch", str(prompts), "--out", str(out), "--model", str(sd_dir),
                 "--threads", "1"]
    with open(tmp_path / "stderr", "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", HELD_BATCH, str(marker), *arguments],
                                stdout=subprocess.DEVNULL, stderr=stderr)
    deadline = time.monotonic() + 300  # ends a hung test; a slow machine only waits longer
    while not marker.exists():
        assert proc.poll() is None, (tmp_path / "stderr").read_text()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    metadata = out / "metadata.jsonl"
    assert len(metadata.read_text().splitlines()) == 4  # the kill left work behind
    assert (out / marker.read_text()).is_file()  # and a picture without its row
    with open(metadata, "a") as handle:
        handle.write('{"file_name": "images/000010-1.png", "te')  # a row torn by the kill
    done = subprocess.run([sys.executable, "-m", "huajia", *arguments], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    names = [json.loads(x)["file_name"] for x in metadata.read_text().splitlines()]
    assert len(names) == len(set(names)) == 15
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(n[7:] for n in names)


def test_bad_lines_are_named_and_the_rest_still_run(tmp_path, sd_dir):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "a red circle", "seed": 1, "steps": 2}\n'
                       '{"prompt": "a red circle", "steps": 2\n'
                       '{"prompt": "a red circle", "stesp": 2}\n'
                       '{"prompt": "a red circle", "steps": "many"}\n'
                       '{"prompt": "a red circle", "steps": 999}\n'
                       '{"prompt": "a blue square", "seed": 2, "steps": 2}\n')
    done = subprocess.run([sys.executable, "-m", "huajia", "batch", str(prompts), "--out",
                           str(tmp_path / "out"), "--model", str(sd_dir)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    errors = [x for x in done.stderr.splitlines() if x.startswith("error:")]
    assert [e.split(":")[2] for e in errors] == ["2", "3", "4", "5"]
    assert "unknown field 'stesp'" in errors[1] and "steps=999 is out of range" in errors[3]
    assert len((tmp_path / "out/metadata.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize("address", ["127.0.0.1:1", "nowhere.invalid:6379"])
def test_an_unreachable_ray_is_one_line_and_exit_2(tmp_path, address):
    prompts = _prompts(tmp_path / "p.jsonl", 1)
    done = subprocess.run([sys.executable, "-m", "huajia", "batch", str(prompts), "--out",
                           str(tmp_path / "out"), "--ray", address],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        next(x for x in done.stderr.splitlines() if x.startswith("error: cannot reach"))]


def test_a_torn_row_is_dropped_and_its_picture_painted_again(tmp_path):
    out = tmp_path / "out"
    (out / "images").mkdir(parents=True)
    (out / "images/000001-0.png").write_bytes(b"png")
    (out / "metadata.jsonl").write_text('{"file_name": "images/000001-0.png"}\n'
                                        '{"file_name": "images/000002-0.png"}\n{"file_na')
    output = BatchOutput(out)  # the second row's picture is missing: not done either
    assert output.done == {"images/000001-0.png"}
    output.write("images/000002-0.png", b"png2", {"file_name": "images/000002-0.png"})
    output.close()
    assert [json.loads(x) for x in (out / "metadata.jsonl").read_text().splitlines()] == [
        {"file_name": "images/000001-0.png"}, {"file_name": "images/000002-0.png"}]
