"""`git kavi run-skill write_note`, confined, vs. a plain Python script doing the same call.

The baseline, measured in the same run: `python script.py` that imports the same skill
module, validates the input with its pydantic model, calls it and validates the
output — no ledger, no hashing, no guard, no confinement. Kavi's figure is the full CLI
command: ledger lookup, registry check, source hash, runtime policy, input validation,
the skill run in a confined child process (namespaces, fresh root, limits, guard inside;
the child is started first and imports while Kavi checks), output validation, redaction,
run record and RUN_RECORD artifact. It also prints the same command without namespaces
(``KAVI_TEST_NO_NAMESPACES=1``: a plain child process under the guard). Goal: ≤ 1.3.

    python bench/bench_run.py [--runs 21]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "src" / "kavi" / "examples" / "write_note"
SCHEMA = {
    "input": {"path": "str", "title": "str", "body": "str"},
    "output": {"written_path": "str", "sha256": "str"},
}

BASELINE = """
import json, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from kavi.skills.base import SkillContext
from skills.write_note import WriteNoteSkill
payload = json.loads(sys.argv[1])
vault = Path({vault!r})
inp = WriteNoteSkill.input_model.model_validate(payload)
out = WriteNoteSkill().execute(inp, SkillContext(vault_root=vault, allowed_write_paths=(vault,)))
print(json.dumps(WriteNoteSkill.output_model.model_validate(dict(out)).model_dump()))
"""


def sh(*argv: str, cwd: Path, env: dict[str, str]) -> str:
    return subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def medians(commands: list[tuple[list[str], dict[str, str]]], cwd: Path, runs: int) -> list[float]:
    """Median wall time of each command, measured interleaved (so load affects all alike)."""
    times: list[list[float]] = [[] for _ in commands]
    for i in range(runs):
        payload = json.dumps({"path": f"Inbox/bench/{i}.md", "title": "Bench", "body": "x" * 200})
        for k, (argv, env) in enumerate(commands):
            start = time.perf_counter()
            subprocess.run([*argv, payload], cwd=cwd, env=env, check=True, capture_output=True)
            times[k].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def bench_env(root: Path) -> dict[str, str]:
    """An environment with its own HOME under ``root`` — a user's normal setup: bytecode
    caching on (this sandbox sets PYTHONDONTWRITEBYTECODE)."""
    home = root / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = Bench\n\temail = bench@example.com\n")
    return {
        **{
            k: v for k, v in os.environ.items() if not k.startswith("GIT_") and k != "PYTHONDONTWRITEBYTECODE"
        },
        "HOME": str(home),
    }


def promoted_forge(root: Path, env: dict[str, str]) -> Path:
    """A forge under ``root`` with the example ``write_note`` promoted (files backend)."""
    kavi = [sys.executable, "-m", "kavi"]
    repo = root / "forge"
    repo.mkdir()
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / "key"), cwd=root, env=env)
    sh("git", "init", "-q", "-b", "main", ".", cwd=repo, env=env)
    sh("git", "config", "gpg.format", "ssh", cwd=repo, env=env)
    sh("git", "config", "user.signingkey", str(root / "key.pub"), cwd=repo, env=env)
    (repo / "README.md").write_text("bench\n")
    sh("git", "add", "-A", cwd=repo, env=env)
    sh("git", "commit", "-q", "-m", "init", cwd=repo, env=env)
    sh(*kavi, "init", cwd=repo, env=env)
    propose = ["propose-skill", "--name", "write_note", "--desc", "bench", "--side-effect", "FILE_WRITE"]
    pid = json.loads(
        sh(*kavi, *propose, "--io-schema-json", json.dumps(SCHEMA), "--format", "json", cwd=repo, env=env)
    )["proposal_id"]
    sh(*kavi, "build-skill", pid, "--backend", "files", "--from", str(EXAMPLE), cwd=repo, env=env)
    sh(*kavi, "verify-skill", pid, cwd=repo, env=env)
    sh(*kavi, "promote-skill", pid, "--yes", cwd=repo, env=env)
    return repo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="kavi-bench-run-"))
    env = bench_env(root)
    kavi = [sys.executable, "-m", "kavi"]
    try:
        repo = promoted_forge(root, env)
        script = root / "baseline.py"
        script.write_text(BASELINE.format(root=str(repo), vault=str(repo / "vault_out")))
        plain_env = {**env, "KAVI_TEST_NO_NAMESPACES": "1"}
        commands = [
            ([sys.executable, str(script)], env),
            ([*kavi, "run-skill", "write_note", "--json"], env),
            ([*kavi, "run-skill", "write_note", "--json"], plain_env),
        ]
        medians(commands, repo, 2)  # warm up
        base, ours, plain = medians(commands, repo, args.runs)
        print(f"baseline  python script (import skill, validate, call) : {base * 1000:7.1f} ms")
        print(f"kavi      git kavi run-skill write_note (confined)      : {ours * 1000:7.1f} ms")
        print(f"kavi      … without namespaces (child + guard only)     : {plain * 1000:7.1f} ms")
        print(f"ratio kavi / baseline = {ours / base:.2f}x   (goal <= 1.3x, median of {args.runs})")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
