"""Signed provenance: an in-toto Statement v1 (SLSA Provenance v1) in a DSSE envelope signed with
the user's SSH key — parsed by the in-toto attestation library, verified by plain ssh-keygen."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path

import pytest
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
from securesystemslib.dsse import Envelope

from conftest import Verified
from support.forge import git, kavi, kavi_json

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def promoted(verified: Verified) -> Path:
    kavi_json("promote-skill", verified.proposal_id, "--yes", cwd=verified.repo)
    return verified.repo


def _validated(data: dict[str, object]) -> Statement:
    """Parse with the in-toto attestation library's own schema (unknown fields are errors)."""
    pb = json_format.ParseDict(data, statement_pb2.Statement())  # type: ignore[attr-defined]
    st = Statement.copy_from_pb(pb)
    st.validate()
    json_format.ParseDict(data["predicate"], provenance_pb2.Provenance())  # type: ignore[attr-defined]
    return st


def test_the_statement_is_valid_in_toto_and_slsa(promoted: Path) -> None:
    repo = promoted
    data = kavi_json("provenance", "write_note@v1", "--unsigned", cwd=repo)
    st = _validated(data)
    assert st.pb.predicate_type == "https://slsa.dev/provenance/v1"
    (subject,) = data["subject"]
    assert subject["name"] == "skills/write_note.py"
    assert subject["digest"]["gitBlob"] == git(
        "rev-parse", "kavi/write_note/v1:skills/write_note.py", cwd=repo
    )
    build = data["predicate"]["buildDefinition"]
    assert build["buildType"] == "pkg:pypi/kavi#docs/build-type-v1.md"
    assert build["externalParameters"]["backend"] == "files"
    (dep,) = build["resolvedDependencies"]
    assert dep["uri"] == "refs/heads/main" and len(dep["digest"]["gitCommit"]) == 40
    byproducts = {b["name"]: b for b in data["predicate"]["runDetails"]["byproducts"]}
    assert set(byproducts) == {"BUILD_LOG", "VERIFICATION_REPORT", "promotion"}
    promotion = byproducts["promotion"]
    assert promotion["uri"] == "refs/tags/kavi/write_note/v1"
    assert promotion["digest"]["gitCommit"] == git("rev-parse", "kavi/write_note/v1^{commit}", cwd=repo)
    # no local path leaks into a statement meant to be shared
    assert str(repo) not in json.dumps(data)


def test_the_build_type_document_defines_every_field(promoted: Path) -> None:
    doc = (ROOT / "docs/build-type-v1.md").read_text()
    data = kavi_json("provenance", "write_note", "--unsigned", cwd=promoted)
    build = data["predicate"]["buildDefinition"]
    assert f"`{build['buildType']}`" in doc
    assert "include docs/build-type-v1.md" in (ROOT / "MANIFEST.in").read_text()

    def keys(obj: object, prefix: str = "") -> set[str]:
        if not isinstance(obj, dict) or prefix.rstrip(".").endswith(("io_schema", "gates", "digest")):
            return set()
        out: set[str] = set()
        for k, v in obj.items():
            inner = keys(v, f"{prefix}{k}.")
            out |= inner or {f"{prefix}{k}"}  # the leaves: what a reader must be told
        return out

    for section in ("externalParameters", "internalParameters"):
        for key in keys(build[section]):
            assert f"`{key}`" in doc, f"{section}.{key} is not defined in the build type"
    annotations = next(b for b in data["predicate"]["runDetails"]["byproducts"] if b["name"] == "promotion")
    for key in annotations["annotations"]:
        assert f"`{key}`" in doc, key


def test_signed_envelope_verifies_with_plain_ssh_keygen(promoted: Path, tmp_path: Path) -> None:
    repo = promoted
    envelope = kavi_json("provenance", "write_note@v1", cwd=repo)
    parsed = Envelope.from_dict(json.loads(json.dumps(envelope)))
    assert parsed.payload_type == "application/vnd.in-toto+json"
    _validated(json.loads(parsed.payload))
    # written out: the PAE is DSSE's, byte for byte, and the .sig is the envelope's signature
    res = kavi("provenance", "write_note@v1", "--output", "out/write_note-v1", cwd=repo)
    assert res.code == 0, res.output
    out = repo / "out"
    written = Envelope.from_dict(json.loads((out / "write_note-v1.intoto.json").read_text()))
    pae = (out / "write_note-v1.pae").read_bytes()
    assert pae == written.pae()
    (sig,) = written.signatures.values()
    armored = (out / "write_note-v1.sig").read_text()
    blob = "".join(line for line in armored.splitlines() if not line.startswith("-----"))
    assert bytes.fromhex(sig.signature) == base64.b64decode(blob)
    assert sig.keyid.startswith("SHA256:")
    # the printed commands verify it with ssh-keygen alone, exactly as printed
    verify = re.search(r"^Verify: (.+)$", res.stdout, re.M)
    then = re.search(r"^Then: (.+)$", res.stdout, re.M)
    assert verify and then and "ssh-keygen -Y verify" in then.group(1), res.stdout
    assert "-I ada@example.com -n git" in then.group(1)
    for command in (verify.group(1), then.group(1)):
        done = subprocess.run(["sh", "-c", command], cwd=repo, capture_output=True, text=True)
        assert done.returncode == 0, (command, done.stderr)
        assert "Good" in done.stdout + done.stderr or command.startswith("git show")
    # any change to the signed bytes fails the same command
    (out / "write_note-v1.pae").write_bytes(pae.replace(b"write_note", b"write_notf", 1))
    done = subprocess.run(["sh", "-c", then.group(1)], cwd=repo, capture_output=True, text=True)
    assert done.returncode != 0
    # a key the forge does not trust signs nothing
    data = kavi_json("provenance", "write_note@v1", "--output", "out/again", "--format", "json", cwd=repo)
    assert data["principal"] == "ada@example.com" and len(data["governance"]) == 40


def test_provenance_needs_a_trusted_key_unless_unsigned(promoted: Path, tmp_path: Path) -> None:
    from support.forge import ssh_key

    stranger = ssh_key(tmp_path / "stranger")
    git("config", "user.signingkey", f"{stranger}.pub", cwd=promoted)
    res = kavi("provenance", "write_note@v1", "--format", "json", cwd=promoted)
    assert res.code == 1 and res.json["code"] == "KAVI-SIGNING", res.output
    assert "not in .kavi/allowed_signers" in res.json["message"]
    assert kavi("provenance", "write_note@v1", "--unsigned", cwd=promoted).code == 0
    bad = kavi("provenance", "nosuch", "--unsigned", "--format", "json", cwd=promoted)
    assert bad.code == 2
