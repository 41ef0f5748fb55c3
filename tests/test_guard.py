"""Tests for the runtime guard (kavi.policy.guard) and its pytest plugin.

Audit hooks cannot be removed, so nothing here installs a guard in the pytest
process: every guarded run is a real child process (tests/guard_cases/*.py, or
``python -m pytest -p kavi.policy.pytest_guard`` on a generated sandbox). All
children are started at once by one module fixture and awaited where needed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kavi.errors import GuardViolation
from kavi.policy.guard import GuardPolicy

SRC = Path(__file__).resolve().parents[1] / "src"
CASES = Path(__file__).resolve().parent / "guard_cases"

DENY_REFUSED = [
    # writes
    "w_open_outside",
    "w_open_append_outside",
    "w_open_rplus_outside",
    "w_open_x_outside",
    "w_open_bytes_path",
    "w_open_pathlike",
    "w_os_open_creat",
    "w_os_open_rdwr_existing",
    "w_os_open_tmpfile_in_outside_dir",
    "w_pathlib_write_text",
    "w_pathlib_touch",
    "w_pathlib_mkdir",
    "w_io_open",
    "w_remove",
    "w_pathlib_unlink",
    "w_rename_out_of_root",
    "w_rename_into_root",
    "w_replace",
    "w_mkdir",
    "w_makedirs",
    "w_rmdir",
    "w_chmod",
    "w_chown",
    "w_utime",
    "w_truncate",
    "w_symlink_outside",
    "w_hardlink_out_of_root",
    "w_hardlink_into_root",
    "w_shutil_rmtree",
    "w_shutil_rmtree_ignore_errors",
    "w_shutil_copy",
    "w_shutil_move_in",
    "w_shutil_copytree",
    "w_tempfile_default_dir",
    "w_tempfile_named_outside",
    "w_relative_dotdot",
    "w_symlink_escape",
    "w_dangling_symlink",
    "w_dir_fd_open",
    "w_dir_fd_remove",
    "w_fchmod_readonly_fd",
    "w_proc_fd_reopen",
    "w_proc_self_mem",
    "w_sqlite_outside",
    "w_sqlite_uri",
    "w_import_readline",
    # subprocesses and native code
    "s_subprocess_run",
    "s_popen_shell",
    "s_os_system",
    "s_os_execv",
    "s_os_fork",
    "s_posix_spawn",
    "s_os_spawnv",
    "s_pty_spawn",
    "s_os_kill",
    "s_posixsubprocess_direct",
    "n_import_ctypes",
    # network
    "net_socket_inet",
    "net_socket_inet6",
    "net_getaddrinfo",
    "net_gethostbyname",
    "net_create_connection",
    "net_unix_connect",
    "net_unix_bind",
    "net_urllib",
    "net_syslog",
    # dynamic code, including attempts to pass the dynamic-code rule
    "d_eval",
    "d_exec",
    "d_compile",
    "d_compile_forged_filename",
    "d_compile_forged_stdlib_filename",
    "d_compile_forged_pseudo_filename",
    "d_import_written_module",
    "d_loader_by_hand",
    "d_source_to_code_by_hand",
    "d_function_type",
    "d_code_replace",
    "d_set_code",
    "d_marshal_loads",
    "d_compile_bytecode_forged",
    "d_ast_flag_patched",
    "d_forwardref_call",
    "d_forwardref_dunder",
    "d_get_type_hints_lowercase_call",
    "d_dataclass_injection",
    "d_pickle_loads",
    "d_exec_from_bare_thread",
    # tampering with the guard
    "t_settrace",
    "t_setprofile",
    "t_addaudithook",
    "t_gc_get_objects",
    "t_gc_get_referrers",
    "t_gc_get_referents",
    "t_current_frames",
    "t_subinterpreter",
    "t_breakpoint",
    "t_read_handle_state",
    "t_read_guard_function_state",
    "t_replace_guard_function_state",
    "t_swap_handle_class",
    "t_monkeypatch_everything",
]

DENY_ALLOWED = [
    "a_write_in_root",
    "a_os_ops_in_root",
    "a_shutil_in_root",
    "a_tempfile_in_root",
    "a_dir_fd_in_root",
    "a_read_outside",
    "a_devnull",
    "a_sqlite_in_root",
    "a_import_fresh_module",
    "a_dataclasses",
    "a_namedtuples_and_enums",
    "a_pydantic",
    "a_stdlib_mix",
    "a_asyncio_and_threads",
    "a_socketpair",
    "a_introspection",
]

DENY_SPECIAL = [
    "swallowed_violation",
    "t_traceback_frames_hold_no_state",
    "t_patch_handle_class",
    "t_second_guard_cannot_install",
    "a_guarded_inside_process_guard",
    "a_stdlib_fallback_on_refusal",
]

# With everything allowed: subprocess, network and dynamic code pass, the rest stays refused.
ALLOW_ALL = {
    "s_subprocess_run": "allowed",
    "net_socket_inet": "allowed",
    "net_getaddrinfo": "allowed",
    "d_eval": "allowed",
    "d_import_written_module": "allowed",
    "d_set_code": "allowed",
    "a_pydantic": "allowed",
    "w_open_outside": "refused",
    "n_import_ctypes": "refused",
    "t_settrace": "refused",
    "t_read_handle_state": "refused",
    "t_subinterpreter": "refused",
}

PASSING_TESTS = """
import dataclasses, socket, tempfile
from pathlib import Path
import pydantic
from hypothesis import given, strategies as st

@dataclasses.dataclass(frozen=True)
class Point:
    x: int

class Model(pydantic.BaseModel):
    a: int
    tags: "list[str]" = []

def test_models(tmp_path):
    (tmp_path / "out.txt").write_text("ok")
    assert Model(a=1).a == 1 and Point(1).x == 1

def test_tempfile_and_sandbox():
    with tempfile.NamedTemporaryFile() as fh:
        fh.write(b"x")
    Path("written_in_sandbox.txt").write_text("ok")
    a, b = socket.socketpair()
    a.close(); b.close()

def test_reads_anywhere():
    assert Path("/etc/hostname").read_text() is not None

@given(st.integers())
def test_property(n):
    assert n == n

KEPT = []

def test_hypothesis_tracks_randoms():
    import random
    from hypothesis import register_random
    rng = random.Random(4)
    KEPT.append(rng)
    register_random(rng)  # hypothesis calls gc.get_referrers in there
"""

SOCKET_TEST = """
import socket
def test_connect():
    socket.create_connection(("127.0.0.1", 9), timeout=0.5)
"""

SUBPROCESS_TEST = """
import subprocess
def test_true():
    subprocess.run(["true"])
"""

WRITE_OUTSIDE_TEST = """
def test_write():
    open({target!r}, "w").write("x")
"""

SWALLOW_TEST = """
def test_swallow():
    try:
        open({target!r}, "w")
    except Exception:
        pass
"""

EXIT_EARLY_TEST = """
import os
def test_hide():
    try:
        open({target!r}, "w")
    except Exception:
        pass
    os._exit(0)
"""

IMPORT_TIME_TEST = """
import socket
socket.socket()
def test_never_runs():
    pass
"""

CONFTEST_WRITE = """
open({target!r}, "w").write("x")
"""


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, object]:
        assert self.returncode == 0, self.stderr[-3000:]
        data: dict[str, object] = json.loads(self.stdout.strip().splitlines()[-1])
        return data


class Children:
    """Start every child process up front; collect each on first use."""

    def __init__(self) -> None:
        self._procs: dict[str, subprocess.Popen[str]] = {}
        self._runs: dict[str, Run] = {}

    def start(self, name: str, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self._procs[name] = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def __getitem__(self, name: str) -> Run:
        if name not in self._runs:
            proc = self._procs[name]
            out, err = proc.communicate(timeout=120)
            self._runs[name] = Run(proc.returncode, out, err)
        return self._runs[name]

    def close(self) -> None:
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAVI_", "PYTEST_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONBREAKPOINT"] = "0"
    env.update(extra)
    return env


def _make_world(base: Path) -> tuple[Path, Path]:
    """A write root and, next to it, an outside directory with things to attack."""
    root, out = base / "root", base / "out"
    root.mkdir(parents=True)
    out.mkdir()
    (out / "existing.txt").write_text("outside")
    (out / "emptydir").mkdir()
    (out / "tree" / "inner").mkdir(parents=True)
    (out / "tree" / "inner" / "f").write_text("x")
    (root / "escape").symlink_to(out)
    (root / "dangling").symlink_to(out / "not-yet")
    (root / "mod_ok.py").write_text("VALUE = 40\n")
    (root / "pkg_ok").mkdir()
    (root / "pkg_ok" / "__init__.py").write_text("")
    (root / "pkg_ok" / "sub.py").write_text("VALUE = 2\n")
    return root, out


def _start_probe(children: Children, name: str, base: Path, scenarios: list[str], **flags: bool) -> None:
    root, out = _make_world(base)
    policy = GuardPolicy(write_roots=(root,), **flags)
    config = base / "config.json"
    config.write_text(
        json.dumps({"root": str(root), "out": str(out), "policy": policy.to_json(), "scenarios": scenarios})
    )
    children.start(
        name,
        [sys.executable, str(CASES / "probe.py"), str(config)],
        cwd=root,
        env=_env(TMPDIR=str(out)),
    )


def _start_pytest(
    children: Children,
    name: str,
    base: Path,
    files: dict[str, str],
    guard: str | None = "default",
    hypothesis_plugin: bool = False,
) -> None:
    sandbox, tmp, out = base / "sandbox", base / "tmp", base / "outside"
    for d in (sandbox, tmp, out):
        d.mkdir(parents=True)
    for filename, text in files.items():
        body = textwrap.dedent(text).format(target=str(out / "victim.txt"))
        (sandbox / filename).write_text(body)
    extra: dict[str, str] = {}
    if guard == "default":
        extra["KAVI_GUARD"] = GuardPolicy(write_roots=(sandbox, tmp)).to_json()
    elif guard is not None:
        extra["KAVI_GUARD"] = guard
    args = [sys.executable, "-m", "pytest", "-p", "kavi.policy.pytest_guard"]
    args += ["-p", "no:cacheprovider", "-q", f"--basetemp={tmp / 'pytest'}"]
    if not hypothesis_plugin:  # the lead's command keeps it; it costs ~1.5 s per run here
        args += ["-p", "no:hypothesispytest"]
    children.start(name, [*args, *files], cwd=sandbox, env=_env(**extra))


@pytest.fixture(scope="module")
def children(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Children]:
    kids = Children()
    base = tmp_path_factory.mktemp("guard")
    every = DENY_REFUSED + DENY_ALLOWED + DENY_SPECIAL
    _start_probe(kids, "deny", base / "deny", every)
    _start_probe(
        kids,
        "allow",
        base / "allow",
        list(ALLOW_ALL),
        allow_subprocess=True,
        allow_network=True,
        allow_dynamic_code=True,
    )
    root, out = _make_world(base / "scoped")
    kids.start(
        "scoped",
        [sys.executable, str(CASES / "scoped.py"), str(root), str(out)],
        cwd=root,
        env=_env(),
    )
    _start_pytest(kids, "pt_pass", base / "pt_pass", {"test_pass.py": PASSING_TESTS}, hypothesis_plugin=True)
    failing = {
        "test_socket.py": SOCKET_TEST,
        "test_sub.py": SUBPROCESS_TEST,
        "test_write.py": WRITE_OUTSIDE_TEST,
    }
    _start_pytest(kids, "pt_failing", base / "pt_failing", failing)
    _start_pytest(kids, "pt_swallow", base / "pt_swallow", {"test_swallow.py": SWALLOW_TEST})
    _start_pytest(kids, "pt_exit_early", base / "pt_exit", {"test_exit.py": EXIT_EARLY_TEST})
    _start_pytest(kids, "pt_import_time", base / "pt_import", {"test_imp.py": IMPORT_TIME_TEST})
    _start_pytest(
        kids,
        "pt_conftest",
        base / "pt_conftest",
        {"conftest.py": CONFTEST_WRITE, "test_ok.py": "def test_ok():\n    pass\n"},
    )
    ok = {"test_ok.py": "def test_ok():\n    pass\n"}
    _start_pytest(kids, "pt_missing_env", base / "pt_missing", ok, guard=None)
    _start_pytest(kids, "pt_bad_json", base / "pt_badjson", ok, guard="{not json")
    _start_pytest(kids, "pt_relative_root", base / "pt_rel", ok, guard='{"write_roots": ["relative"]}')
    try:
        yield kids
    finally:
        kids.close()


# --- the process guard --------------------------------------------------------------------


@pytest.mark.parametrize("name", DENY_REFUSED)
def test_refused(children: Children, name: str) -> None:
    report = children["deny"].json()
    result = report["results"][name]  # type: ignore[index]
    assert result["outcome"] == "refused", result
    assert result["detail"] in report["violations"]  # type: ignore[operator]


@pytest.mark.parametrize("name", DENY_ALLOWED)
def test_allowed(children: Children, name: str) -> None:
    result = children["deny"].json()["results"][name]  # type: ignore[index]
    assert result["outcome"] == "allowed", result


def test_refusal_messages_name_the_category(children: Children) -> None:
    results = children["deny"].json()["results"]
    detail = {name: results[name]["detail"] for name in results}  # type: ignore[index,union-attr]
    assert detail["w_open_outside"].startswith("write outside write roots: open(")
    assert detail["w_symlink_escape"].endswith("/out/f.txt")
    assert detail["s_subprocess_run"].startswith("subprocess: subprocess.Popen")
    assert detail["net_socket_inet"].startswith("network: socket.__new__")
    assert detail["n_import_ctypes"].startswith("native code: ctypes.dlopen")
    assert detail["d_eval"].startswith("dynamic code: compile()")
    assert detail["t_settrace"] == "tamper: sys.settrace"


def test_swallowed_violation_is_still_recorded(children: Children) -> None:
    report = children["deny"].json()
    result = report["results"]["swallowed_violation"]  # type: ignore[index]
    assert result == {"outcome": "allowed", "detail": "caught and ignored"}
    assert any("swallowed.txt" in v for v in report["violations"])  # type: ignore[union-attr]


def test_second_guard_cannot_install_silently(children: Children) -> None:
    report = children["deny"].json()
    result = report["results"]["t_second_guard_cannot_install"]  # type: ignore[index]
    assert result["detail"] == "raised: the runtime guard could not install its audit hook"
    assert "tamper: sys.addaudithook" in report["violations"]  # type: ignore[operator]


def test_refusals_let_stdlib_fall_back(children: Children) -> None:
    result = children["deny"].json()["results"]["a_stdlib_fallback_on_refusal"]  # type: ignore[index]
    assert result["outcome"] == "allowed"
    assert result["detail"].endswith("/deny/root")


def test_guarded_inside_process_guard(children: Children) -> None:
    result = children["deny"].json()["results"]["a_guarded_inside_process_guard"]  # type: ignore[index]
    assert result == {"outcome": "allowed", "detail": "inner violations=1"}


def test_read_violations_survives_class_patching(children: Children) -> None:
    report = children["deny"].json()
    result = report["results"]["t_patch_handle_class"]  # type: ignore[index]
    assert result["outcome"] == "allowed"
    assert result["detail"].startswith("property=0 read_violations=")
    assert int(result["detail"].rsplit("=", 1)[1]) > 50


def test_traceback_exposes_no_guard_state(children: Children) -> None:
    result = children["deny"].json()["results"]["t_traceback_frames_hold_no_state"]  # type: ignore[index]
    assert result["outcome"] == "allowed"
    assert result["detail"].startswith("guard frames=") and result["detail"].endswith("problems=[]")


def test_nothing_was_written_outside(children: Children, tmp_path_factory: pytest.TempPathFactory) -> None:
    children["deny"].json()
    out = Path(children["deny"].json()["results"] and tmp_path_factory.getbasetemp())
    leaked = [
        p
        for p in out.glob("guard*/deny/out/**/*")
        if p.name not in {"existing.txt", "emptydir", "tree", "inner", "f"}
    ]
    assert leaked == []
    assert (next(out.glob("guard*/deny/out/existing.txt"))).read_text() == "outside"


def test_allow_flags(children: Children) -> None:
    results = children["allow"].json()["results"]
    outcomes = {name: results[name]["outcome"] for name in ALLOW_ALL}  # type: ignore[index]
    assert outcomes == ALLOW_ALL


# --- guarded(): one thread, one block ---------------------------------------------------------


def test_guarded_is_thread_scoped(children: Children) -> None:
    report = children["scoped"].json()
    assert report["before_block"] == "allowed"
    assert report["inside_block"] == "refused"
    assert report["pre_existing_thread_during_block"] == "allowed"
    assert report["thread_started_inside_block"] == "refused"
    assert report["thread_from_block_after_exit"] == "refused"
    assert report["thread_started_after_block"] == "allowed"
    assert report["after_block"] == "allowed"
    assert report["network_inside"] == "refused"
    assert report["nested_looser_policy"] == "refused"
    assert report["dataclass_inside"] == "Point(x=1)"
    assert len(report["handle_violations"]) == 5  # type: ignore[arg-type]


def test_guarded_cannot_be_left_from_inside(children: Children) -> None:
    report = children["scoped"].json()
    assert report["forged_exit"] == "refused"
    assert report["after_forged_exit"] == "refused"
    assert report["after_real_exit"] == "allowed"
    assert report["exception_out_of_block"] == "propagated"
    assert report["after_exception"] == "allowed"


# --- the pytest plugin -----------------------------------------------------------------------


def _guard_lines(run: Run) -> list[str]:
    return [line for line in run.stdout.splitlines() if line.startswith("KAVI-GUARD: ")]


def test_plugin_passing_session(children: Children) -> None:
    run = children["pt_pass"]
    assert run.returncode == 0, run.stdout + run.stderr
    assert "5 passed" in run.stdout
    assert "KAVI-GUARD-SESSION: clean" in run.stdout
    assert _guard_lines(run) == []
    assert "KAVI-GUARD-LIVE" not in run.stderr


@pytest.mark.parametrize(
    ("test_id", "category"),
    [
        ("test_socket.py::test_connect", "network: socket.getaddrinfo"),
        ("test_sub.py::test_true", "subprocess: subprocess.Popen"),
        ("test_write.py::test_write", "write outside write roots: open("),
    ],
)
def test_plugin_failing_tests(children: Children, test_id: str, category: str) -> None:
    run = children["pt_failing"]
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.stdout + run.stderr
    assert "3 failed" in run.stdout
    assert f"FAILED {test_id} - kavi.policy.guard.GuardRefusal" in run.stdout
    assert sum(line.startswith("KAVI-GUARD: " + category) for line in _guard_lines(run)) == 1
    assert "KAVI-GUARD-SESSION: violations=3" in run.stdout
    assert "KAVI-GUARD-LIVE: " + category in run.stderr


def test_plugin_swallowed_violation_fails_session(children: Children) -> None:
    run = children["pt_swallow"]
    assert "1 passed" in run.stdout
    assert run.returncode == 1
    assert _guard_lines(run)[0].startswith("KAVI-GUARD: write outside write roots: open(")
    assert "KAVI-GUARD-SESSION: violations=1" in run.stdout


def test_plugin_live_line_survives_os_exit(children: Children) -> None:
    run = children["pt_exit_early"]
    assert run.returncode == 0  # the test killed the session: no summary at all ...
    assert "KAVI-GUARD-SESSION" not in run.stdout
    assert "KAVI-GUARD-LIVE: write outside write roots" in run.stderr  # ... but this stays


def test_plugin_guards_test_module_import(children: Children) -> None:
    run = children["pt_import_time"]
    assert run.returncode == pytest.ExitCode.INTERRUPTED, run.stdout + run.stderr
    assert _guard_lines(run)[0].startswith("KAVI-GUARD: network: socket.__new__")
    assert "KAVI-GUARD-SESSION: violations=1" in run.stdout


def test_plugin_guards_conftest_import(children: Children) -> None:
    # a conftest.py failing at import stops pytest before the session (exit 4): the
    # live line is the report
    run = children["pt_conftest"]
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, run.stdout + run.stderr
    assert "KAVI-GUARD-LIVE: write outside write roots: open(" in run.stderr
    assert "passed" not in run.stdout


@pytest.mark.parametrize("name", ["pt_missing_env", "pt_bad_json"])
def test_plugin_fails_closed(children: Children, name: str) -> None:
    run = children[name]
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, run.stdout + run.stderr
    assert "KAVI_GUARD" in run.stderr
    assert "passed" not in run.stdout


# --- GuardPolicy (plain values: no hook involved) --------------------------------------------


def test_policy_json_round_trip(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    policy = GuardPolicy(write_roots=(tmp_path / "link" / ".." / "link",), allow_network=True)
    assert policy.write_roots == ((tmp_path / "real").resolve(),)
    again = GuardPolicy.from_json(policy.to_json())
    assert again == policy
    assert json.loads(policy.to_json()) == {
        "write_roots": [str((tmp_path / "real").resolve())],
        "allow_subprocess": False,
        "allow_network": True,
        "allow_dynamic_code": False,
        "protected": [],
        "read_roots": None,
    }


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        "{not json",
        '{"write_roots": "/tmp"}',
        '{"write_roots": ["relative/dir"]}',
        '{"write_roots": [1]}',
        '{"write_roots": ["/tmp"], "allow_network": "yes"}',
        '{"write_roots": ["/tmp"], "allow_everything": true}',
        '{"allow_network": false}',
    ],
)
def test_policy_rejects_malformed_json(text: str) -> None:
    with pytest.raises(GuardViolation) as info:
        GuardPolicy.from_json(text)
    assert info.value.message.startswith("invalid runtime guard policy")


def test_policy_rejects_bad_values() -> None:
    with pytest.raises(GuardViolation):
        GuardPolicy(write_roots="/tmp")  # type: ignore[arg-type]
    with pytest.raises(GuardViolation):
        GuardPolicy(write_roots=(Path("/tmp"),), allow_subprocess=1)  # type: ignore[arg-type]
