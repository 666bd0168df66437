"""The public surface: ``from huajia import …`` names, lazily (no torch at import)."""

import subprocess
import sys

import huajia


def test_all_lists_exactly_the_lazy_names():
    assert sorted(huajia.__all__) == sorted(["HuajiaError", "__version__", *huajia._LAZY])
    for name in huajia.__all__:
        assert getattr(huajia, name) is not None


def test_import_is_light_and_version_comes_from_metadata():
    from importlib import metadata

    code = ("import sys, huajia; assert 'torch' not in sys.modules, 'torch imported'; "
            "assert 'diffusers' not in sys.modules; print(huajia.__version__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == metadata.version("huajia")


def test_unknown_attribute_is_an_attribute_error():
    try:
        huajia.Engin  # noqa: B018 - the lookup is the test
    except AttributeError as error:
        assert "Engin" in str(error)
    else:
        raise AssertionError("huajia.Engin did not raise")
