"""The confined child that runs one skill: ``python -I -m kavi.confine.worker``.

Started before Kavi has finished its checks, it imports what every skill needs
(pydantic, the skill contract, the runtime guard) and waits on stdin. It is started
confined (:mod:`kavi.confine.init` builds its world around it before it reads anything)
or, where the machine has no namespaces, as a plain process that takes on its resource
limits itself. Then it reads one JSON request — the verified source, the validated
input, the context, the guard policy — and:

1. compiles the source (exactly the bytes Kavi hashed) and installs the runtime guard
   for the whole process (a second layer, inside the OS boundary);
2. executes the module, validates the input with the skill's own input model, calls
   ``execute``;
3. writes one JSON reply to the descriptor that was its stdout (the skill's own prints
   go to stderr): the output's raw field values (Kavi validates them against the
   proposal's declared schema, never trusting this process), or what went wrong.

Kavi's process never loads the skill's code; this process never sees the ledger, the
signing key or Kavi's environment.
"""

from __future__ import annotations

import gc

if __name__ == "__main__":
    gc.disable()  # while the modules every skill needs load (no cycles to find); on for the skill

import binascii
import json
import os
import signal
import sys
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import CodeType, ModuleType
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel
from pydantic import ValidationError as PydanticError

from kavi.errors import GuardViolation, KaviError
from kavi.policy.guard import GuardPolicy, install_process_guard, read_violations
from kavi.skills.base import BaseSkill, SkillContext
from kavi.yamlio import format_validation

if TYPE_CHECKING:
    from importlib.abc import Loader

MAX_REQUEST = 64 * 1024 * 1024


class VerifiedSource:
    """The loader of a verified skill: it serves exactly the verified bytes (never reads a
    file), as :class:`importlib.abc.SourceLoader` would serve a file's.

    The code object is compiled when the loader is made — before the runtime guard is
    installed — so under the guard the import machinery only *executes* an existing code
    object built from exactly the verified bytes. (Written out rather than subclassing
    ``importlib.abc``, which alone costs the worker more to import than a skill's run.)
    """

    def __init__(self, path: str, source: bytes) -> None:
        self._path = path
        self._source = source
        self._code = compile(source, path, "exec", dont_inherit=True)

    def create_module(self, spec: ModuleSpec) -> None:
        return None  # the default module

    def exec_module(self, module: ModuleType) -> None:
        exec(self._code, module.__dict__)  # the verified skill's code object

    def get_code(self, fullname: str) -> CodeType:
        return self._code

    def get_filename(self, fullname: str) -> str:
        return self._path

    def get_source(self, fullname: str) -> str:
        """The source as text (for tracebacks and :mod:`inspect`), decoded as Python decodes it."""
        from importlib.util import decode_source

        return decode_source(self._source)

    def get_data(self, path: str) -> bytes:
        if path != self._path:
            raise OSError(f"only the verified skill source can be read, not {path}")
        return self._source

    def is_package(self, fullname: str) -> bool:
        return False


def _load(name: str, loader: VerifiedSource, origin: str) -> ModuleType:
    as_loader = cast("Loader", loader)  # it has what the import system calls
    spec = ModuleSpec(name, as_loader, origin=origin)
    spec.has_location = True
    module = ModuleType(name)
    module.__spec__ = spec
    module.__loader__ = as_loader
    module.__file__ = origin
    module.__package__ = name.rpartition(".")[0]
    sys.modules[name] = module
    try:
        loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _context(data: dict[str, Any]) -> SkillContext:
    return SkillContext(
        vault_root=Path(data["vault_root"]),
        allowed_write_paths=tuple(Path(p) for p in data.get("allowed_write_paths", [])),
        read_roots=tuple(Path(p) for p in data.get("read_roots", [])),
        protected=tuple(Path(p) for p in data.get("protected", [])),
        secrets=dict(data.get("secrets", {})),
    )


def _fail(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "kind": kind, "message": message, **extra}


def run(request: dict[str, Any]) -> dict[str, Any]:
    """Run the requested skill; the reply (never raises for what the skill does)."""
    gc.freeze()  # what is loaded by now stays: later collections need not look at it
    gc.enable()
    os.chdir(request["cwd"])
    os.environ.update(request.get("env", {}))
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # a file over the limit ends the process
    if request.get("limits"):  # no namespaces: this process takes on its limits itself
        from kavi.confine.init import apply_limits

        apply_limits(0, {k: v for k, v in request["limits"].items() if k != "processes"})
    name, filename, class_name = request["module"], request["filename"], request["class_name"]
    try:
        loader = VerifiedSource(filename, binascii.a2b_base64(request["source"]))
    except SyntaxError as exc:
        return _fail("trust", f"{filename} does not compile: {exc}")
    ctx = _context(request["context"])
    handle = install_process_guard(GuardPolicy.from_json(json.dumps(request["guard"])))
    try:
        module = _load(name, loader, filename)
        cls = getattr(module, class_name, None)
        if not (isinstance(cls, type) and issubclass(cls, BaseSkill)):
            return _fail("trust", f"{filename} does not define {class_name}")
        try:
            inp = cls.input_model.model_validate(request["input"])
        except PydanticError as exc:
            return _fail("input", "invalid input", why=format_validation(exc))
        result = cls().execute(inp, ctx)
        data = dict(result) if isinstance(result, BaseModel) else result
        try:
            json.dumps(data, allow_nan=False)
        except (TypeError, ValueError) as exc:
            return _fail("output", f"the output is not plain JSON data ({exc})")
    except MemoryError:
        return _fail("limit", "the skill ran out of memory", limit="memory_mb")
    except GuardViolation:
        return _fail("guard", "refused by the runtime guard", violations=read_violations(handle))
    except KaviError as exc:
        if read_violations(handle):
            return _fail("guard", "refused by the runtime guard", violations=read_violations(handle))
        return _fail("kavi", exc.message, code=exc.code, why=exc.why, remedy=exc.remedy)
    except Exception as exc:
        if read_violations(handle):
            return _fail("guard", "refused by the runtime guard", violations=read_violations(handle))
        return _fail("failed", f"{type(exc).__name__}: {exc}")
    found = read_violations(handle)
    if found:
        return _fail("guard", "refused by the runtime guard", violations=found)
    return {"ok": True, "output": data}


def main() -> int:
    reply = os.dup(1)  # the reply channel; what the skill prints goes to stderr
    os.set_inheritable(reply, False)
    os.dup2(2, 1)
    line = sys.stdin.buffer.readline(MAX_REQUEST)
    if not line.strip():
        return 0  # Kavi refused the run before it started: nothing to do
    try:
        answer = run(json.loads(line))
    except MemoryError:
        answer = _fail("limit", "the skill ran out of memory", limit="memory_mb")
    except BaseException as exc:
        answer = _fail("failed", f"{type(exc).__name__}: {exc}")
    try:
        text = json.dumps(answer, allow_nan=False, default=str)
    except (TypeError, ValueError, RecursionError) as exc:
        text = json.dumps(_fail("output", f"the reply cannot be encoded ({type(exc).__name__})"))
    data = (text + "\n").encode("utf-8", "surrogatepass")
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    view = memoryview(data)
    while view:
        view = view[os.write(reply, view) :]
    os._exit(0)  # nothing left to do: no interpreter shutdown (Kavi kills the tree anyway)


if __name__ == "__main__":
    sys.exit(main())
