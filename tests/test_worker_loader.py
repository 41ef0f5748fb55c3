"""The worker's loader for verified skills: exactly the verified bytes, as the import system runs them."""

from __future__ import annotations

import gc
import inspect
import sys
import traceback

import pytest

from kavi.confine.worker import VerifiedSource, _load

SOURCE = (
    "# -*- coding: utf-8 -*-\n"
    "import sys\n"
    "ME = sys.modules[__name__]\n"
    "def fail():\n"
    "    raise ValueError('café')\n"
    "class Thing:\n"
    "    value = 1\n"
).encode()


def test_the_module_runs_the_verified_bytes_with_a_proper_spec() -> None:
    origin = "/nowhere/thing.py"
    module = _load("_kavi_trusted_.thing_v1", VerifiedSource(origin, SOURCE), origin)
    try:
        assert module.ME is module and module.Thing.value == 1
        assert module.__spec__ is not None and module.__spec__.origin == "/nowhere/thing.py"
        assert module.__file__ == "/nowhere/thing.py" and module.__package__ == "_kavi_trusted_"
        assert inspect.getsource(module.Thing) == "class Thing:\n    value = 1\n"
        with pytest.raises(ValueError) as info:
            module.fail()
        text = "".join(traceback.format_exception(info.value))
        assert 'File "/nowhere/thing.py", line 5, in fail' in text and "raise ValueError('café')" in text
    finally:
        sys.modules.pop("_kavi_trusted_.thing_v1", None)


def test_nothing_but_the_verified_bytes_is_served() -> None:
    loader = VerifiedSource("/nowhere/thing.py", SOURCE)
    assert loader.get_data("/nowhere/thing.py") == SOURCE
    with pytest.raises(OSError, match="only the verified skill source"):
        loader.get_data("/etc/passwd")
    assert loader.get_code("x") is loader.get_code("y")  # compiled once, before any guard


def test_a_module_that_fails_to_run_is_not_left_importable() -> None:
    with pytest.raises(ZeroDivisionError):
        _load("_kavi_trusted_.broken_v1", VerifiedSource("/nowhere/b.py", b"x = 1 / 0\n"), "/nowhere/b.py")
    assert "_kavi_trusted_.broken_v1" not in sys.modules


def test_importing_the_worker_module_leaves_the_collector_alone() -> None:
    assert gc.isenabled()  # only the worker process itself turns it off while it loads
