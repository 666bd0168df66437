"""scripts/check_imports.py: the package has no import cycles and keeps the layer order of docs/design.md."""

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def check():
    spec = importlib.util.spec_from_file_location("check_imports", REPO / "scripts" / "check_imports.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up
    spec.loader.exec_module(module)
    return module


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in {"huajia/__init__.py": "", "huajia/errors.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_package_has_no_cycles_and_keeps_the_layer_order(check):
    problems = check.find_problems(REPO / "src")
    assert not problems, "\n".join(problems)


def test_a_clean_package_passes(check, tmp_path, capsys):
    root = _package(tmp_path, {"huajia/world/__init__.py": "",
                               "huajia/world/a.py": "from huajia.errors import HuajiaError\n"})
    assert check.find_problems(root) == []
    assert check.main(["check_imports.py", str(root)]) == 0
    assert "no cycles" in capsys.readouterr().out


def test_a_back_edge_and_a_cycle_are_named(check, tmp_path, capsys):
    root = _package(tmp_path, {
        "huajia/world/__init__.py": "",
        "huajia/world/x.py": "from huajia.serving.app import create_app\n",
        "huajia/world/a.py": "from huajia.world import b\n",
        "huajia/world/b.py": "def late():\n    from huajia.world.a import thing\n",  # hidden in a function
        "huajia/serving/__init__.py": "",
        "huajia/serving/app.py": "from huajia.errors import HuajiaError\n",
    })
    problems = check.find_problems(root)
    assert len(problems) == 2
    cycle, back = problems
    assert cycle.startswith("import cycle: huajia.world.a -> huajia.world.b")
    assert "huajia.world.b -> huajia.world.a" in cycle and "inside a function" in cycle
    assert "huajia.world.x (world) imports huajia.serving.app (serving): against the layer order" in back
    assert check.main(["check_imports.py", str(root)]) == 1
    assert capsys.readouterr().out.splitlines() == problems


def test_re_exports_siblings_type_checking_and_unknown_modules(check, tmp_path):
    root = _package(tmp_path, {
        "huajia/__init__.py": "if TYPE_CHECKING:\n    from huajia.engine.engine import Engine\n",
        "huajia/engine/__init__.py": "",
        "huajia/engine/engine.py": "from huajia import __version__\n",  # the root package: base, no cycle
        "huajia/world/__init__.py": "",
        "huajia/world/y.py": "from huajia import Engine\n",  # the engine module, through the re-export
        "huajia/training/__init__.py": "",
        "huajia/training/t.py": "if TYPE_CHECKING:\n    from huajia.evaluation import e\n",
        "huajia/evaluation/__init__.py": "",
        "huajia/evaluation/e.py": "from huajia.nowhere import x\n",
        "huajia/extra.py": "",
    })
    problems = "\n".join(check.find_problems(root))
    assert "huajia.world.y (world) imports huajia.engine.engine (engine): against the layer order" in problems
    assert ("under TYPE_CHECKING: huajia.training.t (training) imports huajia.evaluation.e (evaluation): "
            "siblings must not import each other") in problems
    assert "huajia.evaluation.e imports huajia.nowhere, which is not a module" in problems
    assert "huajia.extra is in no layer" in problems
    assert "cycle" not in problems
