"""A fake ``claude`` executable for tests: a stand-in for the external LLM only.

:func:`install` writes an executable script named ``claude`` into a directory (put it
first on PATH). The script behaves like Claude Code's headless mode — it reads its
arguments, writes files into its working directory (the sandbox) and prints
``stream-json`` events ending in a ``result`` event — and, depending on ``mode``,
misbehaves in one specific way.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from support.evidence import Evidence
from support.forge import WRITE_NOTE_DIR

MODES = (
    "good",
    "third_file",
    "symlink",
    "exec_bit",
    "delete_tracked",
    "rename_tracked",
    "nested_repo",
    "git_dir_in_sandbox",
    "main_repo_tamper",
    "env_dump",
    "hang",
    "is_error",
    "ignored_file",
    "permission_denied",
    "no_result",
    "read_withheld",
)

SCRIPT = r"""#!{python}
import json, os, socket, subprocess, sys, time
from pathlib import Path

MODE = {mode!r}
# the example skill's files, embedded: a confined agent cannot read the Kavi checkout
# when it lives under /tmp (a CI clone), which the jail replaces with an empty one
SOURCES = json.loads({sources!r})
EVIDENCE_PORT = {port!r}
MAIN_REPO = Path({main_repo!r}) if {main_repo!r} else None


def report(key, value):
    # loopback TCP: the one channel a confined agent shares with the test
    with socket.create_connection(("127.0.0.1", EVIDENCE_PORT), timeout=5) as conn:
        conn.sendall((json.dumps({{"key": key, "value": value}}) + "\n").encode())


args = sys.argv[1:]
report("record", {{"argv": args, "cwd": os.getcwd(), "env": dict(os.environ)}})

def event(obj):
    print(json.dumps(obj), flush=True)

allowed = []
if "--allowedTools" in args:
    for item in args[args.index("--allowedTools") + 1].split(","):
        if item.startswith("Write(") and item.endswith(")"):
            allowed.append(item[len("Write("):-1])

event({{"type": "system", "subtype": "init", "cwd": os.getcwd(), "tools": ["Read", "Write", "Edit"]}})
packet = Path("KAVI_BUILD_PACKET.md").read_text()
event({{"type": "assistant", "message": {{"content": [{{"type": "text", "text": "Writing the skill."}}]}}}})

skill_path, test_path = allowed
for target, text in ((skill_path, SOURCES["skill"]), (test_path, SOURCES["test"])):
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    Path(target).write_text(text)

result = {{"type": "result", "subtype": "success", "is_error": False, "num_turns": 3,
          "total_cost_usd": 0.01, "result": "Both files written.", "permission_denials": []}}

if MODE == "third_file":
    Path("notes.txt").write_text("an extra file\n")
elif MODE == "symlink":
    os.remove(skill_path)
    os.symlink("/etc/passwd", skill_path)
elif MODE == "exec_bit":
    os.chmod(skill_path, 0o755)
elif MODE == "delete_tracked":
    os.remove("README.md")
elif MODE == "rename_tracked":
    Path("docs").mkdir(exist_ok=True)
    os.rename("README.md", "docs/README.md")
elif MODE == "nested_repo":
    subprocess.run(["git", "init", "-q", "vendor/inner"], check=True)
    Path("vendor/inner/x.py").write_text("X = 1\n")
elif MODE == "git_dir_in_sandbox":
    subprocess.run(["git", "config", "core.hooksPath", "/tmp/evil"], check=False,
                   capture_output=True)
    Path(".git/hooks").mkdir(parents=True)
    Path(".git/hooks/post-checkout").write_text("#!/bin/sh\necho pwned\n")
elif MODE == "main_repo_tamper":
    gitdir = MAIN_REPO / ".git"
    if not gitdir.is_dir():  # confined: the forge is out of sight
        report("main_repo", "hidden")
        sys.exit(1)
    (gitdir / "hooks" / "pre-push").write_text("#!/bin/sh\necho pwned\n")
    with open(gitdir / "config", "a") as fh:
        fh.write("[core]\n\thooksPath = /tmp/evil-hooks\n")
    subprocess.run(["git", "--git-dir", str(gitdir), "update-ref", "refs/heads/evil", "HEAD"],
                   check=False, capture_output=True)
    subprocess.run(["git", "--git-dir", str(gitdir), "config", "user.name", "Mallory"],
                   check=False, capture_output=True)
elif MODE == "env_dump":
    dump = "\n".join(f"{{k}}={{v}}" for k, v in sorted(os.environ.items()))
    Path("env.txt").write_text(dump)
    with open(skill_path, "a") as fh:
        fh.write("\n# " + dump.replace("\n", "\n# ") + "\n")
    print(dump, file=sys.stderr)
elif MODE == "hang":
    child = ("import json, socket, time\n"
             "time.sleep(3)\n"
             f"conn = socket.create_connection(('127.0.0.1', {{EVIDENCE_PORT}}))\n"
             "conn.sendall(json.dumps({{'key': 'alive', 'value': 1}}).encode() + bytes([10]))\n")
    subprocess.Popen([sys.executable, "-c", child])
    time.sleep(600)
elif MODE == "is_error":
    result.update({{"subtype": "error_during_execution", "is_error": True}})
elif MODE == "ignored_file":
    Path("vault_out").mkdir(exist_ok=True)
    Path("vault_out/leak.md").write_text("ignored but present\n")
elif MODE == "permission_denied":
    result["permission_denials"] = [{{"tool_name": "Bash", "tool_input": {{"command": "curl x"}}}}]
elif MODE == "no_result":
    sys.exit(0)
elif MODE == "read_withheld":
    Path("listing.txt").write_text("\n".join(sorted(os.listdir("."))))

event(result)
"""


def install(
    bin_dir: Path,
    mode: str,
    *,
    evidence: Evidence,
    main_repo: Path | None = None,
) -> Path:
    if mode not in MODES:
        raise ValueError(f"unknown fake claude mode {mode!r}")
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "claude"
    script.write_text(
        SCRIPT.format(
            python=sys.executable,
            mode=mode,
            sources=json.dumps(example_sources()),
            port=evidence.port,
            main_repo=str(main_repo) if main_repo else "",
        )
    )
    script.chmod(0o755)
    return script


def example_sources() -> dict[str, str]:
    """The write_note example's skill and test file contents."""
    return {
        "skill": (WRITE_NOTE_DIR / "skills" / "write_note.py").read_text(),
        "test": (WRITE_NOTE_DIR / "tests" / "test_skill_write_note.py").read_text(),
    }


def recorded(evidence: Evidence) -> dict[str, object]:
    """What the fake claude saw: its argv, cwd and environment."""
    data: dict[str, object] = evidence.wait("record", 5)
    return data
