"""requirements.lock (scripts/lock.sh) pins every dependency pyproject.toml declares, at a
version its range allows, so setup.sh installs what the suite was tested with."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _locked() -> dict[str, str]:
    text = (ROOT / "requirements.lock").read_text()
    return {canonicalize_name(name): version
            for name, version in re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", text, re.M)}


def test_the_lock_pins_every_declared_dependency_inside_its_range():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"]]
    for extra in ("dev", "ray", "upscale", "quant"):
        declared += project["optional-dependencies"][extra]
    locked = _locked()
    for line in declared:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{name} is not in requirements.lock; run bash scripts/lock.sh"
        assert requirement.specifier.contains(locked[name], prereleases=True), \
            f"{name}=={locked[name]} is outside {requirement.specifier}; run bash scripts/lock.sh"


def test_the_lock_takes_pytorchs_cpu_build_and_no_cuda_or_torchvision():
    locked = _locked()
    assert locked["torch"].endswith("+cpu")
    assert not [name for name in locked if name.startswith("nvidia") or name == "torchvision"]
