"""The in-process SSHSIG check against ssh-keygen (the reference), on the same signatures.

The fast path may only ever say *good* where ssh-keygen says good, under the same
principal; where it cannot judge (options, patterns, other key types) it defers.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kavi.sshsig import normalize_public_key, verify, verify_reference
from kavi.sshsig_fast import good_principal

KEY_TYPES = [("ed25519", []), ("ecdsa", ["-b", "256"]), ("ecdsa", ["-b", "384"]), ("ecdsa", ["-b", "521"])]
KEY_TYPES += [("rsa", ["-b", "2048"])]


def _key(tmp_path: Path, kind: str, extra: list[str], name: str) -> tuple[Path, str]:
    key = tmp_path / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, *extra, "-N", "", "-C", name, "-f", str(key)],
        check=True,
        capture_output=True,
    )
    return key, normalize_public_key((tmp_path / f"{name}.pub").read_text())


def _sign(key: Path, payload: bytes, namespace: str = "git") -> str:
    done = subprocess.run(
        ["ssh-keygen", "-Y", "sign", "-n", namespace, "-f", str(key), "-q"],
        input=payload,
        capture_output=True,
        check=True,
    )
    return done.stdout.decode()


@pytest.mark.parametrize(("kind", "extra"), KEY_TYPES, ids=[f"{k}{''.join(e)}" for k, e in KEY_TYPES])
def test_fast_path_agrees_with_ssh_keygen(tmp_path: Path, kind: str, extra: list[str]) -> None:
    key, pub = _key(tmp_path, kind, extra, "ada")
    _other, other_pub = _key(tmp_path, "ed25519", [], "eve")
    payload = b"tree 0123\nauthor Ada\n\na record\n"
    good = _sign(key, payload)
    plain = f'ada@example.com namespaces="git" {pub}\n'
    cases: list[tuple[str, bytes, str, str, str | None]] = [
        ("good", payload, good, plain, "ada@example.com"),
        ("good, no principal claimed", payload, good, plain, None),
        ("other payload", payload + b"x", good, plain, "ada@example.com"),
        ("another principal claimed", payload, good, plain, "eve@example.com"),
        ("key not listed", payload, good, f'eve@example.com namespaces="git" {other_pub}\n', None),
        ("namespace not allowed", payload, good, f'ada@example.com namespaces="file" {pub}\n', None),
        ("signed in another namespace", payload, _sign(key, payload, "file"), plain, None),
        ("no options", payload, good, f"ada@example.com {pub}\n", "ada@example.com"),
        ("expired", payload, good, f'ada@example.com valid-before="20200101" {pub}\n', None),
        ("not yet valid", payload, good, f'ada@example.com valid-after="29990101" {pub}\n', None),
        ("pattern principal", payload, good, f'*@example.com namespaces="git" {pub}\n', "ada@example.com"),
    ]
    lines = good.splitlines()
    body = "".join(lines[1:-1])
    flipped = body[:-8] + ("A" if body[-8] != "A" else "B") + body[-7:]
    cases.append(
        ("signature bytes altered", payload, "\n".join([lines[0], flipped, lines[-1]]) + "\n", plain, None)
    )
    for label, data, sig, signers, principal in cases:
        ref = verify_reference(data, sig, signers, principal=principal)
        fast = good_principal(data, sig, signers, "git", principal)
        if fast is not None:
            assert ref.ok and ref.principal == fast, (label, ref)
        both = verify(data, sig, signers, principal=principal)
        assert (both.ok, both.principal) == (ref.ok, ref.principal), (label, both, ref)
    # the plain cases are judged in-process (that is the point)
    assert good_principal(payload, good, plain, "git", "ada@example.com") == "ada@example.com"
    assert good_principal(payload, good, plain, "git", None) == "ada@example.com"
