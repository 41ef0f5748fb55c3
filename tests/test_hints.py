"""Every next-step hint Kavi prints is a command that works exactly as printed.

Each test walks a path a user walks, parses the ``Label: command`` lines a command
printed, and runs them literally (``git kavi …`` in-process, ``git …`` as git itself,
``promote-skill`` at a real pseudo-terminal answering its question).
"""

from __future__ import annotations

import os
import pty
import re
import select
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kavi.cli.hints import LABELS
from support import packet_agent
from support.forge import Result, git, kavi, new_repo, ssh_key, use_signing_key

pytestmark = pytest.mark.slow

HINT = re.compile(rf"^(?P<label>{'|'.join(re.escape(x) for x in LABELS)}): (?P<cmd>git .+)$", re.M)


def hints(text: str) -> dict[str, list[str]]:
    found = {m.group("label"): shlex.split(m.group("cmd")) for m in HINT.finditer(text)}
    assert found, f"no hint in:\n{text}"
    return found


def run(argv: list[str], cwd: Path) -> Result:
    """The command exactly as printed."""
    assert argv[0] == "git", argv
    if argv[1] == "kavi":
        return kavi(*argv[2:], cwd=cwd)
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def works(argv: list[str], cwd: Path, *, verdicts: tuple[int, ...] = (0,)) -> Result:
    """Run a hint; it must not be a usage or internal error (2, 3), and must end in one of
    ``verdicts`` (a failed build or verification is a verdict, not a broken command)."""
    res = run(argv, cwd)
    assert res.code in verdicts, f"hint {shlex.join(argv)} exited {res.code}:\n{res.output}"
    return res


def at_terminal(argv: list[str], cwd: Path, answer: str = "y\n") -> tuple[int, str]:
    """Run ``git kavi …`` as a child process whose stdin and stdout are a pseudo-terminal."""
    assert argv[:2] == ["git", "kavi"]
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kavi", *argv[2:]], cwd=cwd, stdin=slave, stdout=slave, stderr=slave
    )
    os.close(slave)
    out, asked = b"", False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            out += data
            if not asked and b"[y/N]" in out:
                os.write(master, answer.encode())
                asked = True
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=30), out.decode("utf-8", "replace").replace("\r\n", "\n")


@pytest.fixture
def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A packet-reading stand-in `claude` on PATH (the default backend) and a signing key."""
    bin_dir = tmp_path / "bin"
    packet_agent.install(bin_dir, "learner")
    monkeypatch.setenv("ANTHROPIC_API_KEY", packet_agent.CREDENTIAL)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    use_signing_key(ssh_key(tmp_path / "keys"))
    return bin_dir


def test_the_happy_path_hints_from_init_to_running_the_skill(tmp_path: Path, agent: Path) -> None:
    repo = new_repo(tmp_path / "forge")
    init = kavi("init", cwd=repo)
    proposed = works(hints(init.stdout)["Next"], repo)  # the example proposal, as printed
    built = works(hints(proposed.stdout)["Next"], repo)  # build-skill with the default backend
    verify = hints(built.stdout)["Next"]
    failed = works(verify, repo, verdicts=(1,))  # attempt 1 fails mypy
    steps = hints(failed.stdout)
    researched = works(steps["Research"], repo)
    assert set(hints(researched.stdout)) == {"Retry", "Or"}
    rebuilt = works(steps["Retry"], repo)  # build-skill --retry: same backend, findings in the packet
    passed = works(hints(rebuilt.stdout)["Next"], repo)
    promote = hints(passed.stdout)["Next"]
    code, shown = at_terminal(promote, repo)
    assert code == 0, shown
    after = hints(shown)
    diff = works(after["Full diff"], repo)
    assert "+def _heading(title: str) -> str:" in diff.stdout
    assert "Kavi promotion record" in works(after["Audit"], repo).stdout
    ran = works(after["Run"], repo)
    assert "written_path" in ran.stdout and (repo / "vault_out/example").is_file()


def test_failure_hints_work_as_printed(tmp_path: Path, agent: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = new_repo(tmp_path / "forge")
    works(hints(kavi("init", cwd=repo).stdout)["Next"], repo)
    packet_agent.install(agent, "governance")  # writes .kavi/policy.yaml: the gate refuses the build
    built = kavi("build-skill", "write_note", cwd=repo)
    assert built.code == 1
    steps = hints(built.stdout)
    assert "policy.yaml" in works(steps["Inspect"], repo).stdout
    works(steps["Research"], repo)
    works(steps["Retry"], repo, verdicts=(1,))

    escalated = kavi("forge", "write_note", cwd=repo)  # a security-class finding: escalates at once
    assert escalated.code == 1 and "ESCALATED" in escalated.stdout
    after = hints(escalated.stdout)
    assert "ESCALATED (SECURITY)" in works(after["Review"], repo).stdout
    works(after["Then"], repo, verdicts=(1,))  # reviewed: one more attempt, which escalates again
    withdrawn = works(after["Or"], repo)
    pruned = works(hints(withdrawn.stdout)["Next"], repo)
    assert "pruned" in pruned.stdout


def test_exhausted_and_stopped_runs_print_working_hints(tmp_path: Path, agent: Path) -> None:
    repo = new_repo(tmp_path / "forge")
    works(hints(kavi("init", cwd=repo).stdout)["Next"], repo)
    packet_agent.install(agent, "stubborn")
    exhausted = kavi("forge", "write_note", "--max-attempts", "1", cwd=repo)
    assert exhausted.code == 1 and "EXHAUSTED" in exhausted.stdout
    steps = hints(exhausted.stdout)
    works(steps["Review"], repo)
    assert "EXHAUSTED" in works(steps["Continue"], repo, verdicts=(1,)).stdout

    (agent / "claude").unlink()  # the backend disappears: the run refuses before any state
    res = kavi("forge", "write_note", cwd=repo)
    assert res.code == 3 and "not found on PATH" in res.stderr
    # the openai backend, unreachable: the run stops (not an escalation) and says how to retry
    config = (
        (repo / ".kavi/config.yaml").read_text().replace("http://localhost:8000/v1", "http://127.0.0.1:9/v1")
    )
    (repo / ".kavi/config.yaml").write_text(config)
    git("commit", "-q", "-am", "unreachable openai", cwd=repo)
    stopped = kavi("forge", "write_note", "--backend", "openai", cwd=repo)
    assert stopped.code == 1 and "STOPPED" in stopped.stdout
    assert "STOPPED" in works(hints(stopped.stdout)["Retry"], repo, verdicts=(1,)).stdout
