"""``git kavi trust show | pin | add | remove``: the forge's keys and this clone's pin.

``add`` and ``remove`` are governance changes: one commit on the target branch that
changes ``.kavi/allowed_signers`` only, signed with your git signing key, which must be
trusted at the branch's tip — except for the very first key of a keyless forge, which
must sign its own addition and becomes the forge's trust root. Rotation is ``add`` the
new key (signed by the old one), then ``remove`` the old one (signed by the new one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kavi.errors import ConflictError, GitError, SigningError, TrustError, ValidationError
from kavi.forge.context import Forge
from kavi.layout import SIGNERS_FILE


def show(forge: Forge) -> dict[str, Any]:
    from kavi.forge.trust import describe_root, fingerprints, load_pin, trust_state

    state = trust_state(forge)
    pin = load_pin(forge)
    current = forge.repo.file_bytes(state.governing, SIGNERS_FILE) if state.governing else None
    keys = [{"fingerprint": fp, "principals": who} for fp, who in fingerprints((current or b"").decode())]
    pin_data = None
    if pin is not None:
        root_keys = [{"fingerprint": fp, "principals": who} for fp, who in fingerprints(pin.signers)]
        pin_data = {"forge_id": pin.forge_id, "keys": root_keys, "text": describe_root(pin)}
    return {
        "pinned": pin_data,
        "branch": state.branch,
        "tip": state.tip,
        "governing": state.governing,
        "sanctioned": state.ok,
        "problem": state.problem.as_dict() if state.problem is not None else None,
        "keys": keys,
    }


def render_show(data: dict[str, Any]) -> str:
    lines = []
    pinned = data["pinned"]
    if pinned is None:
        lines.append("trust root: none pinned yet (this forge has no key, or no command needed one yet)")
    else:
        lines.append(f"trust root (pinned): forge {pinned['forge_id'] or '(not known yet)'}")
        lines += [f"  {k['fingerprint']}  {k['principals']}" for k in pinned["keys"]]
    tip = (data["tip"] or "-")[:12]
    if data["problem"] is None:
        lines.append(f"{data['branch']} @ {tip}: every commit sanctioned from the root")
    else:
        p = data["problem"]
        lines.append(f"{data['branch']} @ {tip}: NOT sanctioned from commit {(p['commit'] or '-')[:12]}")
        lines.append(f"  rule: {p['rule']}  why: {p['why']}")
        lines.append(f"  governance is read from {(data['governing'] or 'nowhere')[:12]}")
    lines.append(f"keys trusted now ({len(data['keys'])}):")
    lines += [f"  {k['fingerprint']}  {k['principals']}" for k in data["keys"]]
    return "\n".join(lines)


def pin(forge: Forge, what: str) -> dict[str, Any]:
    """Pin this clone's root from an allowed-signers FILE or a key FINGERPRINT."""
    from kavi.forge.trust import FINGERPRINT_PIN, load_pin, pin_root, trust_state
    from kavi.gitstore.protected import signer_lines
    from kavi.gitstore.trustchain import TrustRoot
    from kavi.sshsig import parse_allowed_signers

    path = Path(what).expanduser()
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        if not parse_allowed_signers(text):
            raise ValidationError(
                f"{what} lists no keys", remedy="pass an allowed_signers file (or a SHA256:… fingerprint)"
            )
        wanted = TrustRoot(text)
    elif what.startswith("SHA256:") and len(what) > 20:
        wanted = TrustRoot(f"{FINGERPRINT_PIN}{what}\n")
    else:
        raise ValidationError(
            f"{what!r} is neither a file nor a key fingerprint",
            remedy="pass an allowed_signers file, or a fingerprint as `ssh-keygen -lf KEY.pub` "
            "prints it (SHA256:…)",
        )
    current = load_pin(forge)
    if current is not None and current.forge_id is not None:
        same = signer_lines(current.signers) == wanted.lines if wanted.lines else _listed(current, what)
        if not same:
            raise TrustError(
                f"this clone already trusts forge {current.forge_id[:12]}, whose root has other keys",
                why="a clone pins one root; re-pinning would trust another forge's history",
                remedy="clone the forge you mean afresh; or, if you are sure, delete "
                f"{forge.kavi_dir / 'trust-root.json'} and pin again",
            )
        state = trust_state(forge)
        return {"forge_id": current.forge_id, "changed": False, "sanctioned": state.ok}
    pin_root(forge, wanted, "file" if wanted.lines else "fingerprint")
    state = trust_state(forge)
    if state.problem is not None and state.governing is None:
        from kavi.forge.trust import refusal

        raise refusal(state, state.problem)
    return {"forge_id": state.forge_id, "changed": True, "sanctioned": state.ok}


def _listed(root: Any, fingerprint: str) -> bool:
    from kavi.forge.trust import fingerprints

    return any(fp == fingerprint for fp, _ in fingerprints(root.signers))


def _public_key(what: str) -> str:
    from kavi.sshsig import normalize_public_key

    path = Path(what).expanduser()
    text = path.read_text(encoding="utf-8") if path.is_file() else what
    try:
        return normalize_public_key(text)
    except SigningError:
        raise ValidationError(
            f"{what!r} is not an OpenSSH public key (or a file holding one)",
            remedy="pass the .pub file, e.g. `git kavi trust add ~/.ssh/id_ed25519.pub`",
        ) from None


def add(forge: Forge, key: str | None, principal: str | None) -> dict[str, Any]:
    """Commit ``.kavi/allowed_signers`` plus ``key`` (default: your own signing key), signed
    by your key (see the module doc)."""
    from kavi.forge.trust import fingerprints, forge_identity, require_sanctioned_tip, trust_state
    from kavi.signing import user_signer
    from kavi.sshsig import fingerprint, parse_allowed_signers

    signer = user_signer(forge.repo)
    public = signer.public_key if key is None else _public_key(key)
    state = trust_state(forge)
    keyless = state.forge_id is None
    tip = forge.repo.branch_tip(state.branch) if keyless else require_sanctioned_tip(forge)
    if tip is None:
        raise GitError(f"target branch {state.branch} does not exist", remedy="run `git kavi init` first")
    current = (forge.repo.file_bytes(tip, SIGNERS_FILE) or b"").decode("utf-8", "replace")
    if any(e.public_key == public for e in parse_allowed_signers(current)):
        raise ValidationError(f"{fingerprint(public)} is already in {SIGNERS_FILE}", remedy="nothing to do")
    if keyless and public != signer.public_key:
        raise SigningError(
            "the first key of a forge must sign its own addition: it becomes the trust root",
            why=f"your git signing key is {signer.fingerprint}, the key to add is {fingerprint(public)}",
            remedy="run `git kavi trust add` with no key: it adds your own signing key",
        )
    who = principal or (signer.principal if public == signer.public_key else _comment_principal(key or ""))
    if not who or any(c.isspace() for c in who) or '"' in who:
        raise ValidationError(
            "no principal for this key",
            remedy="name it: `git kavi trust add KEY.pub --principal bob@example.com`",
        )
    line = f'{who} namespaces="git" {public}'
    text = current if current.endswith("\n") or not current else current + "\n"
    commit = _commit_signers(
        forge,
        tip,
        text + line + "\n",
        f"kavi: trust {who} ({fingerprint(public)})",
        f"Kavi-Trust: add {fingerprint(public)}",
        signer,
        keyless=keyless,
    )
    if keyless:
        from kavi.forge.trust import pin_root
        from kavi.gitstore.trustchain import TrustRoot

        pin_root(forge, TrustRoot(text + line + "\n", commit), "trust add")
    forge_id = forge_identity(forge)
    return {
        "commit": commit,
        "added": fingerprint(public),
        "principal": who,
        "root": keyless,
        "forge_id": forge_id,
        "keys": [fp for fp, _ in fingerprints(text + line + "\n")],
        "branch": state.branch,
    }


def _comment_principal(key: str) -> str | None:
    path = Path(key).expanduser()
    parts = (path.read_text(encoding="utf-8") if path.is_file() else key).split()
    comment = parts[2] if len(parts) > 2 else ""
    return comment if "@" in comment else None


def remove(forge: Forge, which: str) -> dict[str, Any]:
    """Commit ``.kavi/allowed_signers`` without the key ``which`` (a fingerprint or key)."""
    from kavi.forge.trust import require_sanctioned_tip, trust_state
    from kavi.signing import user_signer
    from kavi.sshsig import fingerprint, parse_allowed_signers

    wanted = which if which.startswith("SHA256:") else fingerprint(_public_key(which))
    signer = user_signer(forge.repo)
    state = trust_state(forge)
    tip = require_sanctioned_tip(forge)
    current = (forge.repo.file_bytes(tip, SIGNERS_FILE) or b"").decode("utf-8", "replace")
    kept: list[str] = []
    removed = 0
    for raw in current.splitlines(keepends=True):
        entries = parse_allowed_signers(raw)
        if entries and fingerprint(entries[0].public_key) == wanted:
            removed += 1
            continue
        kept.append(raw)
    if not removed:
        raise ValidationError(f"{wanted} is not in {SIGNERS_FILE}", remedy="see `git kavi trust show`")
    text = "".join(kept)
    if not parse_allowed_signers(text):
        raise TrustError(
            f"removing {wanted} would leave {SIGNERS_FILE} without any key",
            why="nobody could ever sign a promotion or a governance change again",
            remedy="add the new key first (`git kavi trust add NEW.pub`), then remove the old one",
        )
    commit = _commit_signers(
        forge,
        tip,
        text,
        f"kavi: stop trusting {wanted}",
        f"Kavi-Trust: remove {wanted}",
        signer,
        keyless=False,
    )
    return {"commit": commit, "removed": wanted, "branch": state.branch}


def _commit_signers(
    forge: Forge, tip: str, text: str, subject: str, trailer: str, signer: Any, *, keyless: bool
) -> str:
    """One signed commit on the target branch changing ``.kavi/allowed_signers`` only; the
    checkout (if on that branch) follows, and nothing changes if it cannot."""
    from kavi.forge.trust import trust_state
    from kavi.signing import trusted_principal

    repo = forge.repo
    branch = trust_state(forge).branch
    if not keyless:
        trusted_principal(signer, (repo.file_bytes(tip, SIGNERS_FILE) or b"").decode(), branch=branch)
    checkout = repo.head_branch() == branch and not repo.is_bare
    if checkout:
        on_disk = forge.workdir / SIGNERS_FILE
        committed = repo.file_bytes(tip, SIGNERS_FILE)
        local = on_disk.read_bytes() if on_disk.exists() else None
        if repo.staged_paths([SIGNERS_FILE]) or local != committed:
            raise ConflictError(
                f"{SIGNERS_FILE} has local changes",
                why="this command commits the file and would mix your edits into the signed change",
                remedy=f"commit or discard them (`git checkout -- {SIGNERS_FILE}`), then run it again",
            )
    blob = repo.write_blob(text.encode("utf-8"))
    tree = repo.update_tree(repo.commit_tree(tip), {SIGNERS_FILE: (0o100644, blob)})
    commit = repo.write_commit(tree=tree, parents=[tip], message=f"{subject}\n\n{trailer}\n", signer=signer)
    repo.set_ref(f"refs/heads/{branch}", commit, message=subject, old=tip)  # compare-and-swap
    if checkout:  # last: the working tree follows the branch (the file was checked unchanged)
        from kavi.gitstore.checkout import advance

        advance(repo, repo.commit_tree(tip), tree)
    return commit
