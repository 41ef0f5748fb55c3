"""SSH signatures through ``ssh-keygen -Y`` — the same mechanism ``git`` uses.

Trust decisions use ``ssh-keygen``'s exit codes, never its text. Verification never
passes a signer-chosen time (``-Overify-time``): key validity windows in the
allowed-signers file (``valid-before=…``) are judged at the verifier's clock, so a
backdated committer date cannot revive an expired key.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from kavi.errors import SigningError, ToolError

NAMESPACE = "git"
_TIMEOUT = 30


def _ssh_keygen() -> str:
    found = shutil.which("ssh-keygen")
    if not found:
        raise ToolError(
            "ssh-keygen not found",
            why="Kavi signs and verifies with OpenSSH's ssh-keygen (as git does)",
            remedy="install OpenSSH (e.g. `apt install openssh-client`)",
        )
    return found


def normalize_public_key(line: str) -> str:
    """``type base64`` of an OpenSSH public key line (comment dropped)."""
    parts = line.strip().split()
    for i, part in enumerate(parts):
        if part.startswith(("ssh-", "ecdsa-", "sk-")) and i + 1 < len(parts):
            return f"{part} {parts[i + 1]}"
    raise SigningError(f"not an OpenSSH public key: {line[:40]!r}")


def fingerprint(public_key: str) -> str:
    """``SHA256:…`` fingerprint of a public key line."""
    import base64
    import hashlib

    blob = base64.b64decode(normalize_public_key(public_key).split()[1])
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


@dataclass(frozen=True)
class AllowedSigner:
    principals: tuple[str, ...]
    options: str
    public_key: str  # "type base64"

    def line(self) -> str:
        opts = f" {self.options}" if self.options else ""
        return f"{','.join(self.principals)}{opts} {self.public_key}"


def parse_allowed_signers(text: str) -> list[AllowedSigner]:
    """Parse an allowed-signers file (see ssh-keygen(1) ALLOWED SIGNERS)."""
    out: list[AllowedSigner] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        tokens = _split_respecting_quotes(line)
        key_at = next((i for i, t in enumerate(tokens) if t.startswith(("ssh-", "ecdsa-", "sk-"))), None)
        if key_at is None or key_at + 1 >= len(tokens) or key_at == 0:
            continue
        principals = tuple(p for p in tokens[0].split(",") if p)
        options = " ".join(tokens[1:key_at])
        out.append(AllowedSigner(principals, options, f"{tokens[key_at]} {tokens[key_at + 1]}"))
    return out


def _split_respecting_quotes(line: str) -> list[str]:
    tokens: list[str] = []
    buf = ""
    quoted = False
    for ch in line:
        if ch == '"':
            quoted = not quoted
            buf += ch
        elif ch.isspace() and not quoted:
            if buf:
                tokens.append(buf)
                buf = ""
        else:
            buf += ch
    if buf:
        tokens.append(buf)
    return tokens


def principals_for_key(allowed_signers: str, public_key: str) -> list[str]:
    want = normalize_public_key(public_key)
    out: list[str] = []
    for entry in parse_allowed_signers(allowed_signers):
        if entry.public_key == want:
            out.extend(entry.principals)
    return out


@dataclass(frozen=True)
class SshSigner:
    """Signs with an ssh key file (private key, or public key + ssh-agent)."""

    key_file: Path
    public_key: str
    principal: str
    use_agent: bool = False

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    def sign(self, payload: bytes, namespace: str = NAMESPACE) -> str:
        cmd = [_ssh_keygen(), "-Y", "sign", "-n", namespace, "-f", str(self.key_file), "-q"]
        if self.use_agent:
            cmd.insert(-1, "-U")
        try:
            proc = subprocess.run(cmd, input=payload, capture_output=True, timeout=_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise SigningError(
                "ssh-keygen timed out while signing",
                why="a passphrase prompt or an unreachable ssh-agent",
                remedy="load the key into ssh-agent (`ssh-add`) or use a key without a passphrase",
            ) from None
        if proc.returncode != 0 or b"BEGIN SSH SIGNATURE" not in proc.stdout:
            err = proc.stderr.decode("utf-8", "replace").strip()
            raise SigningError(
                f"signing with {self.key_file} failed",
                why=err or f"ssh-keygen exited {proc.returncode}",
                remedy="check `user.signingkey` and that the key is usable (`ssh-add -l`)",
            )
        return proc.stdout.decode("ascii")


def signer_from_key(key_spec: str, principal: str) -> SshSigner:
    """Build a signer from a git ``user.signingkey`` value."""
    spec = key_spec.strip()
    if spec.startswith("key::") or spec.startswith(("ssh-", "ecdsa-", "sk-")):
        literal = spec[len("key::") :] if spec.startswith("key::") else spec
        tmpdir = Path(tempfile.mkdtemp(prefix="kavi-key-"))
        pub = tmpdir / "key.pub"
        pub.write_text(literal + "\n")
        return SshSigner(pub, normalize_public_key(literal), principal, use_agent=True)
    path = Path(os.path.expanduser(spec))
    if not path.exists():
        raise SigningError(
            f"signing key {path} does not exist",
            remedy="point `git config user.signingkey` at your ssh key file",
        )
    if path.suffix == ".pub":
        private = path.with_suffix("")
        public = normalize_public_key(path.read_text())
        if private.exists():
            return SshSigner(private, public, principal)
        return SshSigner(path, public, principal, use_agent=True)
    pub_path = Path(str(path) + ".pub")
    if pub_path.exists():
        public = normalize_public_key(pub_path.read_text())
    else:
        proc = subprocess.run(
            [_ssh_keygen(), "-y", "-f", str(path)],
            capture_output=True,
            timeout=_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            raise SigningError(
                f"cannot read the public half of {path}",
                why=proc.stderr.decode("utf-8", "replace").strip(),
                remedy=f"create {path}.pub with `ssh-keygen -y -f {path} > {path}.pub`",
            )
        public = normalize_public_key(proc.stdout.decode())
    return SshSigner(path, public, principal)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    principal: str | None
    key_fingerprint: str | None
    detail: str


def signature_public_key(signature: str) -> str | None:
    """The public key embedded in an SSH signature (``ssh-keygen -Y check-novalidate`` style)."""
    import base64
    import struct

    lines = [ln for ln in signature.strip().splitlines() if ln and not ln.startswith("-----")]
    try:
        blob = base64.b64decode("".join(lines))
    except ValueError:
        return None
    if not blob.startswith(b"SSHSIG"):
        return None
    try:
        offset = 6 + 4  # magic + version
        (length,) = struct.unpack(">I", blob[offset : offset + 4])
        key_blob = blob[offset + 4 : offset + 4 + length]
        (tlen,) = struct.unpack(">I", key_blob[:4])
        key_type = key_blob[4 : 4 + tlen].decode("ascii")
    except (struct.error, UnicodeDecodeError):
        return None
    return f"{key_type} {base64.b64encode(key_blob).decode()}"


_SIGNER_FILES: dict[str, Path] = {}
_SIGNER_DIR: list[Path] = []
_SIGNER_LOCK = threading.Lock()


def _signers_file(allowed_signers: str) -> Path:
    """One file per distinct allowed-signers text for the life of the process.

    Thread-safe: the file is written under a lock to a private name and renamed into
    place, and never rewritten — a concurrent ``ssh-keygen`` reading it can never see
    it truncated or half-written (which read as "no such signer").
    """
    import atexit
    import hashlib

    with _SIGNER_LOCK:
        found = _SIGNER_FILES.get(allowed_signers)
        if found is not None and found.exists():
            return found
        if not _SIGNER_DIR or not _SIGNER_DIR[0].is_dir():
            _SIGNER_DIR[:] = [Path(tempfile.mkdtemp(prefix="kavi-signers-"))]
            atexit.register(shutil.rmtree, _SIGNER_DIR[0], True)
        path = _SIGNER_DIR[0] / hashlib.sha256(allowed_signers.encode()).hexdigest()
        fd, tmp = tempfile.mkstemp(prefix=".part-", dir=_SIGNER_DIR[0])
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(allowed_signers)
        os.replace(tmp, path)
        _SIGNER_FILES[allowed_signers] = path
        return path


def verify(
    payload: bytes,
    signature: str,
    allowed_signers: str,
    namespace: str = NAMESPACE,
    *,
    principal: str | None = None,
) -> Verdict:
    """Check ``signature`` over ``payload`` against an allowed-signers text.

    With ``principal`` (a signer's claim, e.g. a ``Kavi-Signer`` trailer) one
    ``ssh-keygen -Y verify`` call decides; a false claim simply fails. Otherwise the
    candidates are the principals listed for the key embedded in the signature, and
    only if that finds none is ``-Y find-principals`` asked (certificates, patterns).
    The verdict is ``ssh-keygen -Y verify``'s exit code — except that a signature whose
    meaning is plain (:mod:`kavi.sshsig_fast`: plain allowed-signers entries, common key
    types) is found good in-process first; anything else, and every refusal, is
    ``ssh-keygen``'s. Thread-safe.
    """
    if "BEGIN SSH SIGNATURE" in signature and allowed_signers.strip():
        try:
            from kavi.sshsig_fast import good_principal
        except ImportError:  # pragma: no cover - cryptography is a dependency
            good_principal = None  # type: ignore[assignment]
        if good_principal is not None:
            who = good_principal(payload, signature, allowed_signers, namespace, principal)
            if who is not None:
                embedded = signature_public_key(signature)
                return Verdict(True, who, fingerprint(embedded) if embedded else None, "good signature")
    return verify_reference(payload, signature, allowed_signers, namespace, principal=principal)


def verify_reference(
    payload: bytes,
    signature: str,
    allowed_signers: str,
    namespace: str = NAMESPACE,
    *,
    principal: str | None = None,
) -> Verdict:
    """:func:`verify` by ``ssh-keygen -Y verify`` alone (the reference)."""
    if "BEGIN SSH SIGNATURE" not in signature:
        return Verdict(False, None, None, "not an SSH signature")
    embedded = signature_public_key(signature)
    key_fp = fingerprint(embedded) if embedded else None
    if not allowed_signers.strip():
        return Verdict(False, None, key_fp, "no allowed signers")
    keygen = _ssh_keygen()
    signers_file = _signers_file(allowed_signers)
    with tempfile.NamedTemporaryFile("w", prefix="sig-", dir=signers_file.parent, delete=True) as fh:
        fh.write(signature)
        fh.flush()
        sig_file = fh.name
        if principal is not None:
            candidates = [principal]
        else:
            candidates = principals_for_key(allowed_signers, embedded) if embedded else []
            if not candidates:
                found = subprocess.run(
                    [keygen, "-Y", "find-principals", "-s", sig_file, "-f", str(signers_file)],
                    capture_output=True,
                    timeout=_TIMEOUT,
                    check=False,
                    stdin=subprocess.DEVNULL,
                )
                if found.returncode != 0:
                    return Verdict(False, None, key_fp, "key is not an allowed signer (or not valid now)")
                candidates = [p for p in found.stdout.decode("utf-8", "replace").split() if p]
        for candidate in candidates:
            proc = subprocess.run(
                [
                    keygen,
                    *("-Y", "verify", "-n", namespace, "-f", str(signers_file)),
                    *("-I", candidate, "-s", sig_file),
                ],
                input=payload,
                capture_output=True,
                timeout=_TIMEOUT,
                check=False,
            )
            if proc.returncode == 0:
                return Verdict(True, candidate, key_fp, "good signature")
    if principal is not None:
        listed = principals_for_key(allowed_signers, embedded) if embedded else []
        if listed and principal not in listed:
            return Verdict(
                False,
                None,
                key_fp,
                f"the record names signer {principal}, but allowed_signers gives this key "
                f"{', '.join(listed)} (Kavi signs under the principal of the key's line)",
            )
        return Verdict(False, None, key_fp, f"not a valid signature by an allowed key of {principal}")
    return Verdict(False, None, key_fp, "signature does not verify (or the key is not valid now)")
