"""``git kavi hooks install``: the server pre-receive hook (pinned trust root) and the client pre-push hook.

An existing hook is never overwritten: it is renamed ``<hook>.chained`` and the Kavi shim
runs it first (with the same stdin); both must accept.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kavi.clock import now_iso
from kavi.errors import ConfigError, NotAForgeError, ValidationError
from kavi.hooks.pinned import HOOK_JSON, TRUST_FILE, state_dir
from kavi.sshsig import parse_allowed_signers

if TYPE_CHECKING:
    from kavi.forge.context import Forge
    from kavi.gitstore.trustchain import TrustRoot

MARKER = "# kavi-managed-hook"

SHIM = """#!/bin/sh
{marker}: {kind}
# Kavi {what}. Installed by `git kavi hooks install{flag}`; a hook that was here
# before is kept as {kind}.chained and runs first. Set KAVI_PYTHON to the Python that
# has Kavi installed if it is not the one below.
KAVI_PYTHON="${{KAVI_PYTHON:-{python}}}"
case $0 in */*) hook_dir=${{0%/*}} ;; *) hook_dir=. ;; esac
input=$(cat)
if [ -x "$hook_dir/{kind}.chained" ]; then
  printf '%s\\n' "$input" | "$hook_dir/{kind}.chained" "$@" || exit $?
fi
{refusals}printf '%s\\n' "$input" | exec "$KAVI_PYTHON" -m {module} "$@"
"""


def shim(kind: str, python: str, protected: Sequence[str] = ()) -> str:
    """The hook script; for ``pre-receive``, ``protected``: the branches pinned as protected
    (their deletion or rewind is refused by the script itself, see
    :func:`kavi.hooks.quick.shell_refusals`)."""
    refusals = ""
    if kind == "pre-receive":
        from kavi.hooks.quick import shell_refusals

        what, module, flag = "server-side enforcement", "kavi.hooks.pre_receive", " --server <repo>"
        refusals = shell_refusals(protected)
    else:
        what, module, flag = "client-side check before pushing", "kavi.hooks.pre_push", ""
    return SHIM.format(
        marker=MARKER, kind=kind, what=what, python=python, module=module, flag=flag, refusals=refusals
    )


@dataclass
class Installed:
    hook: Path
    chained: Path | None
    pinned_trust: Path | None = None
    notes: list[str] = field(default_factory=list)


def _write_hook(hooks_dir: Path, kind: str, text: str) -> Installed:
    """Install ``text`` as the ``kind`` hook. A hook that was there and is not Kavi's is
    kept as ``<kind>.chained`` (runs first); at no moment is there no hook: the old one is
    linked to its new name, then the new one replaces it in one rename."""
    hooks_dir.mkdir(parents=True, exist_ok=True)
    path = hooks_dir / kind
    chained = None
    if path.exists() and MARKER not in path.read_text(errors="replace"):
        chained = hooks_dir / f"{kind}.chained"
        if chained.exists():
            raise ConfigError(
                f"{path} is not Kavi's and {chained} already exists",
                remedy=f"merge the two hooks by hand, or remove {chained}",
            )
    staged = hooks_dir / f".{kind}.kavi-new"
    staged.write_text(text)
    staged.chmod(0o755)
    try:
        if chained is not None:
            try:
                os.link(path, chained)
            except OSError:
                shutil.copy2(path, chained)
        os.replace(staged, path)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    return Installed(hook=path, chained=chained)


def _branch_name_ok(name: str) -> bool:
    import subprocess

    found = subprocess.run(
        ["git", "check-ref-format", f"refs/heads/{name}"], capture_output=True, check=False
    )
    return found.returncode == 0 and not name.startswith("-")


def _git_dir_of(repo_path: Path) -> Path:
    from kavi.gitstore.repo import GitRepo

    repo = GitRepo.open(repo_path)
    return repo.git_dir


def _point_unborn_head(git_dir: Path, branch: str | None) -> str | None:
    """A new bare repository's HEAD may name an unprotected branch that does not exist
    yet (``master``): whoever creates it first decides what every clone checks out.
    Point it at the protected branch instead."""
    import subprocess

    if branch is None:
        return None
    env = {**os.environ, "GIT_DIR": str(git_dir)}
    head = subprocess.run(["git", "symbolic-ref", "-q", "HEAD"], env=env, capture_output=True, text=True)
    current = head.stdout.strip()
    if head.returncode != 0 or current == f"refs/heads/{branch}":
        return None
    exists = subprocess.run(["git", "rev-parse", "-q", "--verify", current], env=env, capture_output=True)
    if exists.returncode == 0:
        return None  # an existing default branch is the admin's choice
    subprocess.run(["git", "symbolic-ref", "HEAD", f"refs/heads/{branch}"], env=env, check=False)
    return f"HEAD pointed at the unborn {current}; it now points at refs/heads/{branch} (protected)"


def install_server(
    target: Path, *, trust: Path | None, protected: list[str] | None, cwd: Path, forge_id: str | None = None
) -> Installed:
    from kavi.gitstore.protected import Layout, signer_lines

    if not target.exists():
        raise ValidationError(f"no repository at {target}", remedy="point --server at the bare repository")
    git_dir = _git_dir_of(target)
    config = Layout()
    source = "defaults"
    forge = None
    root = None
    try:
        from kavi.forge.context import Forge

        forge = Forge.open(cwd)
        config = Layout.from_config(forge.committed_config)
        source = f"the forge at {forge.workdir}"
        root = _forge_root(forge)
    except (NotAForgeError, ConfigError):
        forge = None
    if protected:
        for name in protected:
            if not _branch_name_ok(name):
                raise ValidationError(
                    f"--protect {name!r} is not a branch name git allows",
                    why="`git check-ref-format --branch` refuses it",
                    remedy="name the branch as git shows it (`git branch --list`)",
                )
        order = list(dict.fromkeys(protected))
        first = config.protected[0] if forge is not None else None
        if first is not None and first in order:  # trust and layout come from the first: the target
            order.remove(first)
            order.insert(0, first)
        config = Layout(tuple(order), config.skills_dir, config.tests_dir, order[0])
    if trust is not None:
        try:
            signers = trust.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValidationError(f"cannot read --trust {trust}: {exc.strerror}") from None
        if root is not None and signer_lines(signers) != root.lines:
            raise ValidationError(
                f"--trust {trust} is not this forge's trust root",
                why=f"the forge's root {root.forge_id} lists other keys; the hook would refuse its history",
                remedy="pass the allowed_signers of the forge's root commit "
                f"(`git show {(root.forge_id or '')[:12]}:.kavi/allowed_signers > root_signers`), "
                "or leave --trust out inside the forge",
            )
    elif root is not None:
        signers = root.signers
    elif forge is not None:
        raise ValidationError(
            "this forge has no trust root yet: .kavi/allowed_signers lists no key",
            why="the server hook checks even the first push against a trust root pinned now",
            remedy="make your git signing key the root with `git kavi trust add`, "
            "or pass --trust FILE (an allowed_signers file)",
        )
    else:
        raise ValidationError(
            "no trust root: pass --trust FILE (an allowed_signers file), or run this inside a forge",
            why="the server hook checks even the first push against a trust root pinned now",
        )
    pinned_id = root.forge_id if root is not None else None
    if forge_id is not None:
        if len(forge_id) != 40 or any(c not in "0123456789abcdef" for c in forge_id):
            raise ValidationError(
                f"--forge {forge_id!r} is not a full commit id", remedy="pass all 40 hex digits"
            )
        if pinned_id is not None and forge_id != pinned_id:
            raise ValidationError(
                f"--forge {forge_id[:12]} is not this forge's root ({pinned_id[:12]})",
                remedy="leave --forge out inside the forge",
            )
        pinned_id = forge_id
    if not parse_allowed_signers(signers):
        raise ValidationError(
            "the trust root lists no keys",
            why="with an empty trust root no promotion could ever be accepted",
            remedy="pass --trust with an allowed_signers file holding at least one key",
        )
    # the hook script is rendered before anything is written: a name it cannot hold stops
    # the installation with nothing changed
    hook_text = shim("pre-receive", sys.executable, config.protected)
    state = state_dir(git_dir)
    state.mkdir(parents=True, exist_ok=True)
    (state / TRUST_FILE).write_text(signers)
    (state / HOOK_JSON).write_text(
        json.dumps(
            {
                "config": config.to_dict(),
                "forge_id": pinned_id,
                "installed_at": now_iso(),
                "source": source,
                "python": sys.executable,
            },
            indent=2,
        )
    )
    for stale in ("config-cache", "config-cache-2"):
        shutil.rmtree(state / stale, ignore_errors=True)
    (state / "forge-id").unlink(missing_ok=True)
    from kavi.gitstore.repo import GitRepo

    server = GitRepo.open(target)
    # malformed trees (names with '/', '..', '.git') never reach the hook's path rules,
    # and replace refs cannot make git show other objects than the ones Kavi checked
    server.config_set("receive.fsckObjects", "true")
    server.config_set("core.useReplaceRefs", "false")
    head_note = _point_unborn_head(git_dir, config.protected[0] if config.protected else None)
    result = _write_hook(git_dir / "hooks", "pre-receive", hook_text)
    result.pinned_trust = state / TRUST_FILE
    if head_note:
        result.notes.append(head_note)
    result.notes.append(f"protected branches: {', '.join(config.protected)} (from {source})")
    if pinned_id:
        result.notes.append(f"forge {pinned_id} pinned (its root commit); other forges' records are refused")
    else:
        result.notes.append(
            "forge id not pinned: the first trust root pushed here defines it (pin it with --forge ID)"
        )
    return result


def _forge_root(forge: Forge) -> TrustRoot | None:
    """The forge's trust root (its root commit and keys), or None while it is keyless."""
    from kavi.forge.trust import trust_state

    state = trust_state(forge)
    if state.problem is not None and state.governing is None:
        from kavi.forge.trust import refusal

        raise refusal(state, state.problem)
    return state.root if state.forge_id else None


def install_client(cwd: Path) -> Installed:
    from kavi.forge.context import Forge

    forge = Forge.open(cwd)
    hooks_dir = forge.location.common_dir / "hooks"
    configured = forge.repo.config_get("core.hooksPath")
    if configured:
        hooks_dir = Path(configured) if os.path.isabs(configured) else forge.workdir / configured
    return _write_hook(hooks_dir, "pre-push", shim("pre-push", sys.executable))
