"""The command line as a user meets it: exit codes, one-line errors (in this process through
``main``, as the shell runs it, and in a real subprocess)."""

import json
import subprocess
import sys

import pytest


def huajia(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "huajia", *args], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("args,needle", [
    (("world", "render", ""), "prompt is empty"),
    (("world", "render", "a magenta circle"), "'magenta'"),
    (("world", "render", "a red circle", "--size", "7"), "size 7"),
    (("world", "render", "a red circle", "--out", "/proc/none/x.png"), "cannot write"),
    (("world", "dataset", "--n", "3", "--out", "/proc/none"), "cannot write"),
    (("world", "dataset", "--n", "3", "--out", "/tmp/x", "--colour-drop", "2"), "not a chance"),
    (("eval", "shapes", "--model", "nope"), "no model at 'nope'"),
    (("train", "lora", "--data", "/nope", "--out", "/tmp/x"), "--data '/nope' does not exist"),
    (("train", "lora", "--data", ".", "--reg-data", "/nope", "--out", "/tmp/x"),
     "--reg-data '/nope' does not exist"),
    (("train", "card", "/tmp"), "has no training.json"),
    (("think", "a red circle", "--lora", "/nope/x.safetensors"), "LoRA '/nope/x.safetensors'"),
    (("serve", "--ray", "127.0.0.1:1"), "cannot reach the Ray cluster at '127.0.0.1:1'"),
    (("serve", "--ray", "local", "--ray-config", "/nope.yaml"), "cannot read Ray config"),
    (("curate", "--data", ".", "--out", "/tmp/x", "--ray", "127.0.0.1:1"), "cannot reach the Ray"),
    (("batch", "/nope.jsonl", "--out", "/tmp/x"), "cannot read batch file '/nope.jsonl'"),
])
def test_bad_input_is_one_line_exit_2(args, needle, cli):
    code, _, stderr = cli(*args)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], stderr


def test_a_bad_input_in_a_real_process_is_one_line_exit_2():
    done = huajia("world", "render", "a magenta circle")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "'magenta'" in lines[0]


def test_render_parse_verify_round_trip(tmp_path):
    out = tmp_path / "pic.png"
    prompt = "两个红色条纹圆形在一个蓝色正方形的左边"
    assert huajia("world", "render", prompt, "--out", str(out)).returncode == 0
    parsed = json.loads(huajia("world", "parse", prompt).stdout)
    assert parsed["lang"] == "zh" and parsed["unparsed"] == []
    verified = huajia("world", "verify", str(out), prompt)
    assert verified.returncode == 0 and "PASS" in verified.stdout
    assert huajia("world", "verify", str(out), "three red circles").returncode == 1


def test_dataset_and_eval_commands(tmp_path):
    done = huajia("world", "dataset", "--n", "12", "--out", str(tmp_path / "ds"))
    assert done.returncode == 0
    assert len((tmp_path / "ds" / "metadata.jsonl").read_text(encoding="utf-8").splitlines()) == 12
    done = huajia("eval", "shapes", "--model", "oracle", "--specs-per-task", "2", "-n", "1",
                  "--json", str(tmp_path / "r.json"), "--out", str(tmp_path / "ev"))
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert report["overall"] >= 0.99 and "single_object" in report["tasks"]
