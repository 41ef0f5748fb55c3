"""Must show, at verify time: generated tests that passed every static gate, and what
they cannot do when ``verify-skill`` runs them.

The tests read the user's key, the forge's git config, a symlink leading out of the
vault, their own and Kavi's environment; write Kavi's artifacts; connect to a loopback
listener; spin, allocate 10 GiB and fill the disk. (Paths arrive as data read at run time,
through the scanner's documented blind spots: the point is the boundary, not the scanner.)
Every attempt fails the verification; nothing leaks into the report, the ledger or git,
and nothing outside changes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from conftest import isolation
from kavi.confine import jail
from support.forge import git, kavi_json, make_forge, ssh_key, use_signing_key
from support.hostile import OPENAI, OTHER, TOKEN, copy_template, everything_stored
from support.skills import skill_source, skill_tests_source, write_files

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not jail.available(), reason="no user namespaces here: see test_confine_fallback.py"),
]

SCHEMA = {"input": {"path": "str"}, "output": {"text": "str"}}
SKILL = skill_source(
    "read_file",
    "READ_ONLY",
    SCHEMA["input"],
    SCHEMA["output"],
    "        return ReadFileOutput(text=ctx.resolve_read_path(input.path).read_text())\n",
    imports="",
)


@pytest.fixture(scope="session")
def verify_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("verify-hostile")
    with isolation(root):
        use_signing_key(ssh_key(root / "keys"))
        repo = make_forge(root)
        path = repo / ".kavi" / "policy.yaml"
        policy = yaml.safe_load(path.read_text())
        policy["scanner"]["network"] = True
        policy["verify"]["pytest_timeout_seconds"] = 40
        policy["verify"]["limits"].update(
            {"cpu_seconds": 3, "memory_mb": 1024, "file_size_mb": 8, "tmp_mb": 32}
        )
        path.write_text(yaml.safe_dump(policy, sort_keys=False))
        git("commit", "-q", "-S", "-am", "policy: network code in the scanner; small verify limits", cwd=repo)
        pid = kavi_json(
            "propose-skill",
            "--name",
            "read_file",
            "--desc",
            "reads",
            "--side-effect",
            "READ_ONLY",
            "--io-schema-json",
            json.dumps(SCHEMA),
            cwd=repo,
        )["proposal_id"]
    return root, str(pid)


@pytest.fixture
def forge(tmp_path: Path, verify_template: tuple[Path, str], isolated_env: Path) -> tuple[Path, str]:
    root, pid = verify_template
    return copy_template(root, tmp_path, isolated_env), pid


def _verify(repo: Path, pid: str, tests: str, where: Path) -> dict:
    src = write_files(where, "read_file", SKILL, tests)
    built = kavi_json("build-skill", pid, "--backend", "files", "--from", str(src), cwd=repo)
    assert built["status"] == "SUCCEEDED", built
    return dict(kavi_json("verify-skill", pid, cwd=repo, expect=1))


ATTACKS = """

# given key: {key}
# given git_config: {git_config}
# given vault_link: {vault_link}
# given own_environ: /proc/self/environ
# given kavi_environ: {kavi_environ}
# given artifact: {artifact_rel}


def _given(name: str) -> str:
    # the targets arrive as data read at run time: wholly unknown paths are the scanner's
    # documented blind spot, so the operating system is what answers
    parts = []
    for line in Path(__file__).read_text().splitlines():
        if line.startswith("# given " + name + ": "):
            parts.append(line.split(": ", 1)[1])
    return "".join(parts)


def test_reads_the_users_key() -> None:
    assert Path(_given("key")).read_text() == ""


def test_reads_the_forges_git_config() -> None:
    assert Path(_given("git_config")).read_text() == ""


def test_follows_a_vault_symlink_out() -> None:
    assert Path(_given("vault_link")).read_text() == ""


def test_its_environment_holds_no_secret() -> None:
    assert Path(_given("own_environ")).read_bytes() == b""


def test_reads_kavis_environment() -> None:
    assert Path(_given("kavi_environ")).read_bytes() == b""


def test_writes_kavis_artifacts(tmp_path: Path) -> None:
    # a run-time tail joined onto the sanctioned root (the scanner's other blind spot)
    target = Path(str(tmp_path) + "/" + _given("artifact"))
    target.write_text("pwned")
    assert target.read_text() == ""


def test_connects_to_loopback() -> None:
    with socket.create_connection(("127.0.0.1", {port}), timeout=2) as conn:
        assert conn.recv(100) == b""
"""


def _chunk_given(source: str) -> str:
    """Long ``# given`` lines split into several (the generated test must pass ruff)."""
    out = []
    for line in source.splitlines():
        if line.startswith("# given ") and len(line) > 100:
            head, value = line.split(": ", 1)
            out += [f"{head}: {value[i : i + 60]}" for i in range(0, len(value), 60)]
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def test_generated_tests_cannot_read_write_or_connect_outside(
    forge: tuple[Path, str], tmp_path: Path, isolated_env: Path, listener: tuple[int, list[str]]
) -> None:
    repo, pid = forge
    port, seen = listener
    git("config", "kavi.test-secret", "git-config-secret-value", cwd=repo)
    (repo / "vault_out").mkdir(exist_ok=True)
    (repo / "vault_out" / "escape").symlink_to(isolated_env / ".ssh" / "id_ed25519")
    artifact = repo / "vault_out" / "kavi" / "planted.md"
    attacks = ATTACKS.format(
        key=isolated_env / ".ssh" / "id_ed25519",
        git_config=repo / ".git" / "config",
        vault_link=repo / "vault_out" / "escape",
        artifact_rel="../" * 40 + str(artifact).lstrip("/"),
        kavi_environ=f"/proc/{os.getpid()}/environ",
        port=port,
    )
    tests = skill_tests_source(
        "read_file", _chunk_given(attacks), imports="import socket\nfrom pathlib import Path\n\n"
    )
    v = _verify(repo, pid, tests, tmp_path / "attacks")
    pytest_gate = v["gates"]["pytest"]
    assert not pytest_gate["ok"] and not pytest_gate["skipped"], json.dumps(v["gates"])
    assert all(v["gates"][g]["ok"] for g in ("scope", "policy", "invariants", "ruff", "mypy")), json.dumps(
        v["gates"]
    )
    findings = "\n".join(pytest_gate["findings"])
    for name in (
        "users_key",
        "git_config",
        "vault_symlink_out",
        "holds_no_secret",
        "kavis_environment",
        "kavis_artifacts",
        "connects_to_loopback",
    ):
        assert name in findings, (name, findings)
    assert not seen and not artifact.exists()
    stored = everything_stored(repo)
    for value in ("theusersprivatekey", "git-config-secret-value", TOKEN, OTHER, OPENAI):
        assert value not in stored, value
    report = (repo / v["report"]).read_text()
    assert "tests confined: namespaces" in report


@pytest.mark.parametrize(
    ("body", "limit"),
    [
        ("    n = 0\n    while True:\n        n += 1\n", "cpu_seconds"),
        ("    assert len(bytearray(10 * 1024**3)) > 0\n", "memory_mb"),
        (
            '    with (tmp_path / "big.bin").open("wb") as fh:\n'
            "        for _ in range(100):\n"
            '            fh.write(b"x" * 2**20)\n',
            "file_size_mb",
        ),
    ],
    ids=["loop", "alloc-10GiB", "fill-disk"],
)
def test_runaway_generated_test_is_killed_and_recorded(
    forge: tuple[Path, str], tmp_path: Path, body: str, limit: str
) -> None:
    repo, pid = forge
    extra = f"\n\ndef test_runaway(tmp_path: Path) -> None:\n{body}"
    tests = skill_tests_source("read_file", extra, imports="from pathlib import Path\n\n")
    v = _verify(repo, pid, tests, tmp_path / "runaway")
    findings = "\n".join(v["gates"]["pytest"]["findings"])
    assert f"{limit} limit exceeded" in findings, findings
    assert f"verify.limits.{limit}" in findings
