"""The trust rule in clones: the same verdicts as the server hook, from a pinned root.

Real repositories, real ssh-keygen keys and signatures, the real CLI. Each attack is one
of issue 11's findings, replayed against a clone (and a fresh clone of it) instead of a
server: the clone must refuse exactly what the hook refuses.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import Verified
from support.forge import forge_id, git, kavi, kavi_json, new_repo, other_forge, ssh_key, use_signing_key
from support.records import forged_event

pytestmark = pytest.mark.slow


def _trust_line(principal: str, key: Path) -> str:
    return f'{principal} namespaces="git" {key.with_suffix(".pub").read_text()}'


def _clone(source: Path, dest: Path) -> Path:
    git("clone", "-q", str(source), str(dest), cwd=dest.parent)
    git("fetch", "-q", "origin", "refs/kavi/*:refs/kavi/*", cwd=dest)
    # no notes before the first promotion
    git("fetch", "-q", "origin", "refs/notes/kavi:refs/notes/kavi", cwd=dest, check=False)
    return dest


def _self_added_key(repo: Path, tmp_path: Path) -> tuple[Path, str]:
    """Mallory appends her own key to allowed_signers and signs that very commit with it."""
    mallory = ssh_key(tmp_path / "mallory", "id_mallory")
    signers = repo / ".kavi/allowed_signers"
    signers.write_text(signers.read_text() + _trust_line("mallory@example.com", mallory))
    git("add", "-A", cwd=repo)
    git("-c", f"user.signingkey={mallory}.pub", "commit", "-q", "-S", "-m", "trust me", cwd=repo)
    return mallory, git("rev-parse", "HEAD", cwd=repo)


def test_a_self_added_key_is_not_trusted_in_the_clone_or_its_fresh_clone(
    verified: Verified, tmp_path: Path
) -> None:
    """Finding: `audit` passed after a user trusted her own key in her clone, and a fresh
    clone of that repository imported and audited clean."""
    repo = verified.repo
    kavi_json("promote-skill", verified.proposal_id, "--yes", cwd=repo)
    forge = forge_id(repo)
    mallory, bad = _self_added_key(repo, tmp_path)
    # the clone itself: nothing is promoted on top of it, audit names the commit and the rule
    use_signing_key(mallory)
    res = kavi("revoke-skill", "write_note", "--yes", "--format", "json", cwd=repo)
    assert res.code == 1 and res.json["code"] == "KAVI-TRUST", res.output
    assert res.json["details"] == {
        "commit": bad,
        "rule": "governance-untrusted",
        "path": ".kavi/allowed_signers",
    }
    audit = kavi("audit", "--format", "json", cwd=repo)
    assert audit.code == 1 and audit.json["ok"] is False
    (check,) = [c for c in audit.json["trust"]["checks"] if not c["ok"]]
    assert bad[:12] in check["what"] and "governance-untrusted" in check["detail"]
    # Mallory signs a ledger event herself, naming her commit as the governance
    forged = forged_event(repo, key=mallory, forge_id=forge, governance=bad, signer="mallory@example.com")
    fresh = _clone(repo, tmp_path / "fresh")
    res = kavi("list-skills", "--format", "json", cwd=fresh)
    assert res.code == 1 and res.json["code"] == "KAVI-TRUST", res.output
    assert res.json["details"]["commit"] == forged
    assert "sanctioned first-parent history" in res.json["message"]
    assert not (fresh / ".git/kavi/ledger.db").exists()
    audit = kavi("audit", "--format", "json", cwd=fresh)
    assert audit.code == 1


def test_a_fresh_clone_pins_its_root_on_first_use_and_says_so(verified: Verified, tmp_path: Path) -> None:
    repo = verified.repo
    kavi_json("promote-skill", verified.proposal_id, "--yes", cwd=repo)
    fresh = _clone(repo, tmp_path / "fresh")
    res = kavi("list-skills", cwd=fresh)
    assert res.code == 0, res.output
    fp = kavi_json("trust", "show", cwd=repo)["keys"][0]["fingerprint"]
    assert "pinned this clone's trust root on first use" in res.stderr and fp in res.stderr
    assert forge_id(fresh) == forge_id(repo)
    shown = kavi_json("trust", "show", cwd=fresh)
    assert shown["sanctioned"] is True and shown["pinned"]["keys"][0]["fingerprint"] == fp
    # the second command is quiet: the pin is kept
    assert "pinned" not in kavi("list-skills", cwd=fresh).stderr


def test_a_clone_pinned_to_another_forge_refuses_this_history(verified: Verified, tmp_path: Path) -> None:
    """Same signer, two forges: a clone pinned to one never takes the other's history."""
    repo = verified.repo
    kavi_json("promote-skill", verified.proposal_id, "--yes", cwd=repo)
    other = other_forge(tmp_path)  # Ada's second forge: same key, another root
    fresh = _clone(repo, tmp_path / "fresh")
    pinned = kavi_json("trust", "pin", str(other / ".kavi/allowed_signers"), cwd=fresh)
    assert pinned["forge_id"] == forge_id(repo)  # same keys: a file pin cannot tell them apart
    # pinning the other forge's id (what `trust-root.json` holds after its first use) refuses
    (fresh / ".git/kavi/trust-root.json").write_text((other / ".git/kavi/trust-root.json").read_text())
    (fresh / ".git/kavi/cache/trust-state.json").unlink()
    res = kavi("list-skills", "--format", "json", cwd=fresh)
    assert res.code == 1 and res.json["details"]["rule"] == "foreign-root", res.output
    assert res.json["details"]["commit"] == forge_id(repo)


def test_pin_by_fingerprint_and_by_file(verified: Verified, tmp_path: Path) -> None:
    repo = verified.repo
    kavi_json("promote-skill", verified.proposal_id, "--yes", cwd=repo)
    fp = kavi_json("trust", "show", cwd=repo)["keys"][0]["fingerprint"]
    a = _clone(repo, tmp_path / "a")
    out = kavi_json("trust", "pin", fp, cwd=a)
    assert out == {"forge_id": forge_id(repo), "changed": True, "sanctioned": True}
    assert kavi_json("list-skills", cwd=a)["skills"][0]["name"] == "write_note"
    b = _clone(repo, tmp_path / "b")
    stranger = ssh_key(tmp_path / "stranger", "id_stranger")
    wrong = tmp_path / "wrong_signers"
    wrong.write_text(_trust_line("stranger@example.com", stranger))
    res = kavi("trust", "pin", str(wrong), "--format", "json", cwd=b)
    assert res.code == 1 and res.json["details"]["rule"] == "foreign-root", res.output
    res = kavi("trust", "pin", "nonsense", "--format", "json", cwd=b)
    assert res.code == 2


def test_second_parent_governance_is_judged_in_a_clone(verified: Verified, tmp_path: Path) -> None:
    """Finding: `merge -s ours` carried an unsigned key addition onto main, and `ledger
    import` accepted any ancestor of main as governance."""
    repo = verified.repo
    kavi_json("promote-skill", verified.proposal_id, "--yes", cwd=repo)
    forge = forge_id(repo)
    main = git("rev-parse", "main", cwd=repo)
    mallory = ssh_key(tmp_path / "mallory", "id_mallory")
    git("switch", "-q", "-c", "side", cwd=repo)
    signers = repo / ".kavi/allowed_signers"
    signers.write_text(signers.read_text() + _trust_line("mallory@example.com", mallory))
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "unsigned key addition", cwd=repo)
    side = git("rev-parse", "HEAD", cwd=repo)
    git("switch", "-q", "main", cwd=repo)
    git("merge", "-q", "-s", "ours", "--no-edit", "side", cwd=repo)
    assert git("rev-parse", "main:.kavi/allowed_signers", cwd=repo) == git(
        "rev-parse", f"{main}:.kavi/allowed_signers", cwd=repo
    )
    state = kavi_json("trust", "show", cwd=repo, expect=1)
    assert state["problem"]["commit"] == side and state["problem"]["rule"] == "governance-untrusted"
    assert state["governing"] == main
    forged = forged_event(repo, key=mallory, forge_id=forge, governance=side, signer="mallory@example.com")
    fresh = _clone(repo, tmp_path / "fresh")
    res = kavi("ledger", "import", "--format", "json", cwd=fresh)
    assert res.code == 1 and res.json["details"]["commit"] == forged, res.output


def test_records_are_signed_under_the_principal_of_the_key(tmp_path: Path) -> None:
    """Finding: Kavi signed its ledger under ``user.email``; when that differed from the
    key's allowed_signers line, the hook and every fresh clone rejected the ledger."""
    key = ssh_key(tmp_path / "keys")
    use_signing_key(key)
    repo = new_repo(tmp_path / "forge")
    kavi_json("init", cwd=repo)
    git("config", "user.email", "ada.lovelace@work.example", cwd=repo)  # differs from the key's line
    kavi_json(
        "propose-skill", "--name", "write_note", "--desc", "d", "--side-effect", "READ_ONLY",
        "--io-schema-json", '{"input": {"a": "str"}, "output": {"b": "str"}}', cwd=repo,
    )  # fmt: skip
    mirrored = kavi_json("ledger", "sync", cwd=repo)["mirrored"]
    messages = git("log", "--format=%B", "refs/kavi/ledger", cwd=repo)
    assert "Kavi-Signer: ada@example.com" in messages and "ada.lovelace@work.example" not in messages
    fresh = _clone(repo, tmp_path / "fresh")
    assert kavi_json("ledger", "import", cwd=fresh)["imported"] == mirrored >= 3


def test_keyless_init_trust_add_pins_the_root(tmp_path: Path) -> None:
    """Finding: `init` without a key recorded an empty root, re-running it claimed the key
    was listed."""
    repo = new_repo(tmp_path / "forge")
    first = kavi_json("init", cwd=repo)
    assert first["signer"] is None and first["trust_root"] is None
    assert not (repo / ".git/kavi/trust-root.json").exists()
    key = ssh_key(tmp_path / "keys")
    use_signing_key(key)
    again = kavi_json("init", cwd=repo)
    assert again["signer_listed"] is False and again["trust_root"] is None
    res = kavi("init", cwd=repo)
    assert "NOT in .kavi/allowed_signers" in res.stdout and "git kavi trust add" in res.stdout
    added = kavi_json("trust", "add", cwd=repo)
    assert added["root"] is True and added["forge_id"] == added["commit"]
    assert subprocess.run(["git", "verify-commit", "HEAD"], cwd=repo, capture_output=True).returncode == 0
    after = kavi_json("init", cwd=repo)
    assert after["signer_listed"] is True and after["trust_root"] == added["commit"]
    assert git("status", "--porcelain", cwd=repo) == ""


def test_trust_add_of_someone_elses_key_first_is_refused(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "forge")
    kavi_json("init", cwd=repo)
    use_signing_key(ssh_key(tmp_path / "keys"))
    bob = ssh_key(tmp_path / "bob", "id_bob", comment="bob@example.com")
    head = git("rev-parse", "HEAD", cwd=repo)
    res = kavi("trust", "add", f"{bob}.pub", "--format", "json", cwd=repo)
    assert res.code == 1 and "must sign its own addition" in res.json["message"]
    assert git("rev-parse", "HEAD", cwd=repo) == head


def test_rotation_in_a_clone_and_its_fresh_clone(verified: Verified, tmp_path: Path) -> None:
    """Add Bob signed by Ada; Bob removes Ada; Bob revokes. Clones agree at every step."""
    repo = verified.repo
    kavi_json("promote-skill", verified.proposal_id, "--yes", cwd=repo)
    bob = ssh_key(tmp_path / "bob", "id_bob", comment="bob@example.com")
    added = kavi_json("trust", "add", f"{bob}.pub", cwd=repo)
    assert added["principal"] == "bob@example.com" and len(added["keys"]) == 2
    use_signing_key(bob)
    ada_fp = next(k for k in kavi_json("trust", "show", cwd=repo)["keys"] if "ada" in k["principals"])
    removed = kavi_json("trust", "remove", ada_fp["fingerprint"], cwd=repo)
    assert removed["removed"] == ada_fp["fingerprint"]
    revoked = kavi_json("revoke-skill", "write_note", "--reason", "rotation test", "--yes", cwd=repo)
    assert revoked["revoked_by"] == "bob@example.com"
    fresh = _clone(repo, tmp_path / "fresh")
    assert kavi_json("list-skills", cwd=fresh)["skills"] == []
    assert kavi_json("audit", cwd=fresh)["ok"] is True
    # Ada's key no longer signs anything here
    use_signing_key(verified.key)
    res = kavi("trust", "add", f"{tmp_path / 'bob' / 'id_bob'}.pub", "--format", "json", cwd=repo)
    assert res.code in (1, 2), res.output
    res = kavi("ledger", "sync", "--format", "json", cwd=repo)
    assert res.code == 1 and "not in .kavi/allowed_signers" in res.json["message"], res.output
