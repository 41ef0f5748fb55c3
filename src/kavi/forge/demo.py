"""``kavi demo``: the whole pipeline on a throwaway forge repository.

Every step runs the real ``git kavi`` command in a child process, exactly as a user
would type it, inside a fresh repository under a temporary directory with its own
demo SSH key (configured in that repository only — the user's git configuration is
never touched).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kavi.errors import InternalError, ToolError

Echo = Callable[[str], None]


@dataclass
class Demo:
    root: Path
    echo: Echo
    steps: list[dict[str, Any]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def repo(self) -> Path:
        return self.root / "forge"

    def sh(self, *argv: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            list(argv),
            cwd=cwd or self.repo,
            env=self.env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if check and proc.returncode != 0:
            raise InternalError(
                f"demo step failed: {shlex.join(argv)} (exit {proc.returncode})",
                why=(proc.stderr or proc.stdout).strip()[-2000:],
                remedy="re-run `kavi demo --keep` and inspect the demo repository",
            )
        return proc

    def kavi(self, *args: str, expect: int = 0, show: bool = True) -> dict[str, Any]:
        """Run ``git kavi <args>`` (as a child process) and return its JSON output."""
        self.echo(f"\n$ git kavi {shlex.join(args)}")
        start = time.monotonic()
        text = self.sh(sys.executable, "-m", "kavi", *args, check=False)
        if text.returncode != expect:
            raise InternalError(
                f"demo step `git kavi {shlex.join(args)}` exited {text.returncode}, expected {expect}",
                why=(text.stderr + text.stdout).strip()[-3000:],
                remedy="re-run `kavi demo --keep` and inspect the demo repository",
            )
        if show:
            # what the command asked or warned (stderr) reads before its result (stdout)
            for line in (text.stderr.rstrip() + "\n" + text.stdout.rstrip()).strip().splitlines():
                if not line.startswith("» "):
                    self.echo(f"  {line}")
        self.steps.append(
            {
                "command": ["git", "kavi", *args],
                "exit": text.returncode,
                "seconds": round(time.monotonic() - start, 2),
            }
        )
        return {"stdout": text.stdout, "stderr": text.stderr, "exit": text.returncode}

    def kavi_json(self, *args: str, expect: int = 0) -> dict[str, Any]:
        proc = self.sh(sys.executable, "-m", "kavi", *args, "--format", "json", check=False)
        if proc.returncode != expect:
            raise InternalError(
                f"demo step `git kavi {shlex.join(args)}` exited {proc.returncode}, expected {expect}",
                why=(proc.stderr + proc.stdout).strip()[-3000:],
            )
        data: dict[str, Any] = json.loads(proc.stdout)
        return data


def _check_tools() -> None:
    for tool in ("git", "ssh-keygen"):
        if not any((Path(p) / tool).exists() for p in os.environ.get("PATH", "").split(os.pathsep)):
            raise ToolError(f"`{tool}` is not on PATH", remedy=f"install {tool} and run the demo again")


def _examples_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "examples" / "write_note"


UNTYPED_HELPER = 'def _heading(title):\n    return f"# {title}"\n\n\n'


def _first_attempt(root: Path) -> Path:
    """The example skill as a first attempt might write it: an untyped helper."""
    import shutil

    attempt = root / "attempt"
    shutil.copytree(_examples_dir(), attempt)
    skill = attempt / "skills" / "write_note.py"
    text = skill.read_text()
    text = text.replace("class WriteNoteInput", UNTYPED_HELPER + "class WriteNoteInput", 1)
    text = text.replace('text = f"# {input.title}\\n', 'text = f"{_heading(input.title)}\\n', 1)
    skill.write_text(text)
    return attempt


def _fix_line(path: Path, line: int) -> None:
    """What the human does with the note: annotate the function on the line it names."""
    lines = path.read_text().split("\n")
    lines[line - 1] = lines[line - 1].replace("def _heading(title):", "def _heading(title: str) -> str:")
    path.write_text("\n".join(lines))


def run_demo(*, keep: bool, echo: Echo, workdir: Path | None = None) -> dict[str, Any]:
    _check_tools()
    root = Path(tempfile.mkdtemp(prefix="kavi-demo-", dir=workdir))
    demo = Demo(root=root, echo=echo)
    home = root / "home"
    home.mkdir()
    # A private HOME: git, libgit2 and ssh-keygen all see only the demo's configuration.
    demo.env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "KAVI_", "XDG_"))},
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Demo User\n\temail = demo@kavi.invalid\n[init]\n\tdefaultBranch = main\n"
    )
    started = time.monotonic()
    echo(f"Kavi demo — a throwaway forge in {demo.repo}")
    echo("\n1. A fresh git repository and a demo SSH signing key (only for this repository)")
    demo.repo.mkdir()
    demo.sh("git", "init", "-q", "-b", "main", ".")
    (demo.repo / "README.md").write_text("# demo forge\n")
    demo.sh("git", "add", "README.md")
    demo.sh("git", "commit", "-q", "-m", "initial commit")
    key = root / "demo_ed25519"
    demo.sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "demo@kavi.invalid", "-f", str(key))
    demo.sh("git", "config", "gpg.format", "ssh")
    demo.sh("git", "config", "user.signingkey", f"{key}.pub")
    echo(f"  key: {key}.pub")

    echo("\n2. Initialise the forge: governance files, ledger, git config")
    demo.kavi("init")

    echo("\n3. Propose the first skill, write_note")
    from kavi.examples import WRITE_NOTE_PROPOSAL

    proposal = demo.kavi_json("propose-skill", *WRITE_NOTE_PROPOSAL)
    pid = str(proposal["proposal_id"])
    echo(f"  proposal {pid} [PROPOSED], spec: {proposal['spec_artifact']}")

    attempt = _first_attempt(root)
    echo("\n4. Build it in a sandbox with the `files` backend from a first attempt that, like many")
    echo("   an LLM's, has an untyped helper; the diff-allowlist gate judges what the backend left")
    demo.kavi("build-skill", pid[:8], "--backend", "files", "--from", str(attempt))

    echo("\n5. Verify: policy scan, invariants, ruff, mypy --strict, pytest under the runtime guard")
    demo.kavi("verify-skill", pid[:8], expect=1)

    echo("\n6. Research the failure: the deterministic classifier turns the gates' words into")
    echo("   file:line facts and writes a RESEARCH_NOTE (an advisor model is optional: none here)")
    demo.kavi("research-skill", pid[:8], "--hint", "type every function, helpers too")
    shown = demo.kavi_json("show", pid[:8])
    fact = next(f for f in shown["researches"][-1]["facts"] if f.get("line"))
    note = next(a["path"] for a in shown["artifacts"] if a["kind"] == "RESEARCH_NOTE")
    for line in (demo.repo / note).read_text().splitlines():
        if line.startswith("| skills/"):
            echo(f"  note: {line}")

    echo(f"\n7. Fix exactly what the note names ({fact['file']}:{fact['line']}) and retry: --retry repeats")
    echo("   the backend and --from; BUILD_PACKET_2 carries the findings and the hint")
    _fix_line(attempt / fact["file"], int(fact["line"]))
    demo.kavi("build-skill", pid[:8], "--retry")
    demo.kavi("verify-skill", pid[:8])

    echo("\n8. Promote — a person's decision, signed with the demo key (--yes stands in for the prompt)")
    demo.kavi("promote-skill", pid[:8], "--yes")

    echo("\n9. Run the TRUSTED skill (hash re-verified, input/output validated, guard on)")
    payload = {"path": "Inbox/AI/hello.md", "title": "Hello from Kavi", "body": "Written by a TRUSTED skill."}
    demo.kavi("run-skill", "write_note", "--json", json.dumps(payload))
    note = demo.repo / "vault_out" / "Inbox" / "AI" / "hello.md"
    echo(f"  {note.relative_to(demo.repo)}: {note.read_text().splitlines()[0]!r}")

    echo("\n10. The audit view travels with the repository: git log --notes=kavi")
    log = demo.sh("git", "log", "--notes=kavi", "-1", "--format=%h %s%n%N").stdout.strip().splitlines()
    for line in log[:14]:
        echo(f"  {line}")
    if len(log) > 14:
        echo(f"  … ({len(log) - 14} more lines)")
    verify = demo.sh("git", "verify-commit", "HEAD", check=False)
    echo(f"  git verify-commit HEAD: {'good signature' if verify.returncode == 0 else 'FAILED'}")

    echo("\n11. Tamper with the promoted file — run-skill refuses the changed bytes")
    skill = demo.repo / "skills" / "write_note.py"
    skill.write_text(skill.read_text().replace('return f"# {title}"', 'return f"# (tampered) {title}"'))
    demo.kavi("run-skill", "write_note", "--json", json.dumps(payload), expect=1)
    demo.sh("git", "checkout", "--", "skills/write_note.py")
    echo("  (restored with `git checkout -- skills/write_note.py`)")

    elapsed = time.monotonic() - started
    echo(f"\nDone in {elapsed:.1f}s. The demo forge is at {demo.repo}")
    if not keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
        echo("(removed; run `kavi demo --keep` to keep it for inspection)")
    return {
        "root": str(root),
        "kept": keep,
        "proposal_id": pid,
        "steps": demo.steps,
        "seconds": round(elapsed, 2),
    }
