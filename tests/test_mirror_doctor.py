"""Provenance that travels: fresh-clone rebuild, tampered mirrors, audit, provenance, crash safety."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Verified
from support.forge import git, kavi, kavi_json

pytestmark = pytest.mark.slow


@pytest.fixture
def published(verified: Verified, tmp_path: Path) -> tuple[Path, Path]:
    """A promoted and used forge, mirrored to a bare 'origin' with all of Kavi's refs."""
    repo = verified.repo
    kavi_json("promote-skill", verified.proposal_id, "--yes", cwd=repo)
    kavi_json("run-skill", "write_note", "--json", '{"path": "a.md", "title": "A", "body": "B"}', cwd=repo)
    kavi_json("ledger", "sync", cwd=repo)
    origin = tmp_path / "origin.git"
    git("clone", "-q", "--mirror", str(repo), str(origin), cwd=tmp_path)
    return repo, origin


def _clone(origin: Path, dest: Path) -> Path:
    git("clone", "-q", str(origin), str(dest), cwd=dest.parent)
    git("fetch", "-q", "origin", "refs/kavi/*:refs/kavi/*", "refs/notes/kavi:refs/notes/kavi", cwd=dest)
    return dest


def test_fresh_clone_rebuilds_an_equal_ledger(published: tuple[Path, Path], tmp_path: Path) -> None:
    repo, origin = published
    clone = _clone(origin, tmp_path / "clone")
    assert not (clone / ".git/kavi/ledger.db").exists()
    # the first Kavi command rebuilds the ledger (every signature checked)
    assert kavi_json("list-skills", cwd=clone) == kavi_json("list-skills", cwd=repo)
    here, there = kavi_json("audit", cwd=repo), kavi_json("audit", cwd=clone)
    assert here["ok"] is True and there["ok"] is True

    def titles(report: dict[str, object]) -> object:
        return {n: [s["title"] for s in secs] for n, secs in report["skills"].items()}  # type: ignore[attr-defined]

    assert titles(here) == titles(there)
    # the vault was restored byte for byte where the bytes travel; transcripts and run
    # records stay on the clone that made them (their digests travelled)
    spec = next((repo / "vault_out/kavi/skill_spec").iterdir())
    assert (clone / spec.relative_to(repo)).read_bytes() == spec.read_bytes()
    assert (
        not (clone / "vault_out/kavi/build_log").exists()
        and not (clone / "vault_out/kavi/run_record").exists()
    )
    assert "digest only" in json.dumps(there)
    # and the skill runs in the clone from the approved bytes
    ran = kavi_json(
        "run-skill", "write_note", "--json", '{"path": "c.md", "title": "C", "body": "D"}', cwd=clone
    )
    assert ran["status"] == "SUCCEEDED"
    # importing again changes nothing
    assert kavi_json("ledger", "import", cwd=clone)["imported"] == 0


def _mirror(clone: Path) -> list[str]:
    return git("rev-list", "--reverse", "refs/kavi/ledger", cwd=clone).splitlines()


def _recommit(clone: Path, commit: str, parent: str | None, message: str, sign: bool) -> str:
    tree = git("rev-parse", f"{commit}^{{tree}}", cwd=clone)
    args = (
        ["commit-tree", tree, "-m", message] + (["-p", parent] if parent else []) + (["-S"] if sign else [])
    )
    return git(*args, cwd=clone)


def _rechain(clone: Path, commits: list[str], start: str | None) -> str:
    """Re-create ``commits`` (messages unchanged, trusted signature) on top of ``start``."""
    parent = start
    for c in commits:
        parent = _recommit(clone, c, parent, git("log", "-1", "--format=%B", c, cwd=clone), sign=True)
    assert parent is not None
    return parent


@pytest.mark.parametrize("attack", ["unsigned", "gap", "rewrite"])
def test_tampered_mirror_is_refused_with_the_commit_named(
    published: tuple[Path, Path], tmp_path: Path, attack: str
) -> None:
    _, origin = published
    clone = _clone(origin, tmp_path / "clone")
    chain = _mirror(clone)
    k = 4
    if attack == "unsigned":
        message = git("log", "-1", "--format=%B", chain[k], cwd=clone)
        bad = _recommit(clone, chain[k], chain[k - 1], message, sign=False)
        tip = _rechain(clone, chain[k + 1 :], bad)
    elif attack == "gap":
        bad = _rechain(clone, [chain[k + 1]], chain[k - 1])
        tip = _rechain(clone, chain[k + 2 :], bad)
    else:
        message = git("log", "-1", "--format=%B", chain[k], cwd=clone).replace("Ada Tester", "Mallory Tester")
        bad = _recommit(clone, chain[k], chain[k - 1], message, sign=True)
        tip = _rechain(clone, chain[k + 1 :], bad)
    git("update-ref", "refs/kavi/ledger", tip, cwd=clone)
    res = kavi("ledger", "import", "--format", "json", cwd=clone)
    assert res.code == 1, res.output
    assert res.json["code"] == "KAVI-TRUST"
    assert res.json["details"]["commit"] == bad
    expected = {"unsigned": "bad signature", "gap": "gap", "rewrite": "does not match its hash"}[attack]
    assert expected in res.json["message"]
    assert not (clone / ".git/kavi/ledger.db").exists()


def test_provenance_is_an_in_toto_slsa_statement(published: tuple[Path, Path]) -> None:
    repo, _ = published
    st = kavi_json("provenance", "write_note@v1", "--unsigned", cwd=repo)
    assert st["_type"] == "https://in-toto.io/Statement/v1"
    assert st["predicateType"] == "https://slsa.dev/provenance/v1"
    (subject,) = st["subject"]
    assert subject["name"] == "skills/write_note.py"
    assert subject["digest"]["gitBlob"] == git("rev-parse", "main:skills/write_note.py", cwd=repo)
    ext = st["predicate"]["buildDefinition"]["externalParameters"]
    assert ext["backend"] == "files" and ext["spec"]["digest"]["sha256"] and ext["packet"]["digest"]["blake3"]
    (dep,) = st["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert len(dep["digest"]["gitCommit"]) == 40
    names = {b["name"] for b in st["predicate"]["runDetails"]["byproducts"]}
    assert names == {"BUILD_LOG", "VERIFICATION_REPORT", "promotion"}
    bad = kavi("provenance", "write_note@v9", "--format", "json", cwd=repo)
    assert bad.code == 2


def _promote_crashing_at(repo: Path, pid: str, point: str) -> int:
    env = {**os.environ, "KAVI_FAILPOINT": point}
    proc = subprocess.run(
        [sys.executable, "-m", "kavi", "promote-skill", pid, "--yes"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
    )
    return proc.returncode


@pytest.mark.parametrize(
    ("point", "missing"),
    [
        ("after-merge", ["tag", "ledger", "notes", "mirror", "checkout"]),
        ("after-tag", ["ledger", "notes", "mirror", "checkout"]),
        ("after-notes", ["mirror", "checkout"]),
        ("after-mirror", ["checkout"]),
    ],
)
def test_doctor_completes_a_promotion_killed_midway(
    verified: Verified, point: str, missing: list[str]
) -> None:
    repo = verified.repo
    assert _promote_crashing_at(repo, verified.proposal_id, point) == 137
    report = kavi_json("doctor", cwd=repo, expect=1)
    (finding,) = [f for f in report["findings"] if f["check"] == "interrupted change"]
    assert "promote of write_note v1" in finding["problem"]
    listed = finding["problem"].split("missing: ")[1].split(" (")[0].split(", ")
    assert listed == missing, finding
    done = finding["problem"].split("done: ")[1].split(";")[0].split(", ")
    assert done == [s for s in ("merge", "tag", "ledger", "notes", "mirror") if s not in missing], finding
    assert finding["repair"].startswith("finish it")
    repaired = kavi_json("doctor", "--repair", cwd=repo)
    assert repaired["ok"] is True
    assert kavi_json("doctor", cwd=repo)["findings"] == []
    # nothing lost: the result is a complete promotion
    assert kavi_json("show", verified.proposal_id, cwd=repo)["proposal"]["status"] == "TRUSTED"
    assert kavi_json("audit", "write_note", cwd=repo)["ok"] is True
    events = kavi_json("status", cwd=repo)
    assert events["unmirrored"] == 0
    assert len(git("rev-list", "refs/kavi/ledger", cwd=repo).splitlines()) == events["events"]
    ran = kavi(
        "run-skill", "write_note", "--json", json.dumps({"path": "x.md", "title": "t", "body": "b"}), cwd=repo
    )
    assert ran.code == 0, ran.output


def test_doctor_rolls_back_a_promotion_whose_merge_never_landed(verified: Verified) -> None:
    from kavi.forge.journal import JOURNAL_FILE

    repo = verified.repo
    before = git("rev-parse", "main", cwd=repo)
    # a crash between writing the journal and moving the branch: the journal exists, main did not move
    assert _promote_crashing_at(repo, verified.proposal_id, "after-merge") == 137
    git("update-ref", "refs/heads/main", before, cwd=repo)
    git("reset", "-q", "--hard", before, cwd=repo)
    git("tag", "-d", "kavi/write_note/v1", cwd=repo, check=False)
    report = kavi_json("doctor", cwd=repo, expect=1)
    (finding,) = [f for f in report["findings"] if f["check"] == "interrupted change"]
    assert "done: nothing visible" in finding["problem"] and finding["repair"].startswith("roll back")
    kavi_json("doctor", "--repair", cwd=repo)
    assert not (repo / ".git/kavi" / JOURNAL_FILE).exists()
    assert kavi_json("promote-skill", verified.proposal_id, "--yes", cwd=repo)["version"] == 1


def test_doctor_closes_an_abandoned_build(verified: Verified) -> None:
    from kavi.clock import now_iso
    from kavi.forge.context import Forge
    from kavi.ledger.models import Build
    from kavi.ledger.reducer import EventKind

    repo = verified.repo
    forge = Forge.open(repo)
    with forge.ledger.transaction("test") as txn:
        txn.put(
            EventKind.BUILD_STARTED,
            Build(
                id="0badbeef-0000-4000-8000-000000000000",
                proposal_id=verified.proposal_id,
                attempt_number=9,
                branch_name="skill/write_note-0badbeef",
                backend="claude",
                base_commit=git("rev-parse", "main", cwd=repo),
                started_at=now_iso(),
            ),
        )
    forge.close()
    report = kavi_json("doctor", cwd=repo, expect=1)
    assert any("never finished" in f["problem"] for f in report["findings"])
    kavi_json("doctor", "--repair", cwd=repo)
    builds = kavi_json("show", verified.proposal_id, cwd=repo)["builds"]
    abandoned = next(b for b in builds if b["id"].startswith("0badbeef"))
    assert abandoned["status"] == "FAILED" and "abandoned" in abandoned["summary"]


def test_doctor_removes_only_its_own_leftover_sandboxes(verified: Verified, tmp_path: Path) -> None:
    """A leftover sandbox of this forge's build goes, however deep it is nested; one whose
    build this ledger never knew (another forge's, or planted) is not doctor's to touch."""
    import tempfile

    repo = verified.repo
    base = Path(tempfile.gettempdir())  # the test's TMPDIR: the default sandbox base
    build_id = kavi_json("show", verified.proposal_id, cwd=repo)["builds"][0]["id"]
    ours = base / f"kavi-build-{build_id}"
    other = base / "kavi-build-00000000-0000-4000-8000-000000000000"
    for root in (ours, other):
        root.mkdir()
        fd = os.open(root, os.O_RDONLY)
        for _ in range(1200):  # deeper than Python's recursion limit (rmtree recurses)
            os.mkdir("d", dir_fd=fd)
            inner = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        os.close(fd)
        (root / "d").chmod(0o500)  # read-only inside: a plain rm -rf cannot empty it
    try:
        report = kavi_json("doctor", cwd=repo, expect=1)
        named = [f["problem"] for f in report["findings"] if f["check"] == "leftover sandbox"]
        assert len(named) == 1 and str(ours) in named[0], named
        kavi_json("doctor", "--repair", cwd=repo)
        assert not ours.exists()
        assert other.exists()
    finally:  # pytest's own cleanup recurses too
        for root in (ours, other):
            subprocess.run(["chmod", "-R", "u+rwx", str(root)], capture_output=True, check=False)
            subprocess.run(["rm", "-rf", str(root)], check=False)
