"""``git kavi init``: make any git repository a forge.

Writes and commits the governance files (``.kavi/config.yaml``, ``.kavi/policy.yaml``,
``.kavi/allowed_signers``) and a ``.gitignore`` entry for the vault, creates the ledger,
and configures git so the audit view and Kavi's refs travel: ``notes.displayRef``
and fetch refspecs for ``refs/kavi/*``, ``refs/notes/kavi`` and ``refs/tags/kavi/*``
(push refspecs are never set: see :mod:`kavi.forge.remotes`).
Running it again changes nothing that is already in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kavi.config import ForgeConfig
from kavi.errors import ConfigError, GitError, NotAForgeError
from kavi.forge.remotes import FETCH_SPECS as FETCH_SPECS
from kavi.forge.remotes import LEDGER_REF as LEDGER_REF
from kavi.forge.remotes import NOTES_REF as NOTES_REF
from kavi.layout import CONFIG_FILE, KAVI_DIR, POLICY_FILE, SIGNERS_FILE
from kavi.locate import RepoLocation, locate

ZERO = "0" * 40

if TYPE_CHECKING:
    from kavi.gitstore.repo import GitRepo
    from kavi.sshsig import SshSigner

NOTES_DISPLAY = "refs/notes/kavi*"  # a glob: no warning while the notes ref does not exist yet

_POLICY_HEADER = """\
# Kavi governance policy. Changing this file on the target branch needs a
# signature from a key in .kavi/allowed_signers as it was *before* the change.
#
# scanner:  what the static scan forbids in generated skills and their tests
# runtime:  first-match rules (ALLOW | DENY | REQUIRE_APPROVAL) per side-effect class
# sandbox:  files withheld from build sandboxes (secrets), file size limit
# mirror:   what refs/kavi/ledger carries beyond digests (artifact kinds, run data)
"""

_CONFIG_HEADER = """\
# Kavi forge configuration. Paths are relative to the repository root.
# Skill layout: <skills_dir>/<name>.py, <tests_dir>/test_skill_<name>.py,
# module <skill_package>.<name>, class <CamelCase>Skill.
"""

_SIGNERS_HEADER = """\
# Keys allowed to promote skills and sign Kavi's records (ssh-keygen ALLOWED SIGNERS format).
# One line per key:  <principal> namespaces="git" <key-type> <base64-key>
# Add a key (then commit, signed by a key already listed here):
#   echo "you@example.com namespaces=\\"git\\" $(cat ~/.ssh/id_ed25519.pub)" >> .kavi/allowed_signers
"""


@dataclass
class InitResult:
    workdir: Path
    target_branch: str
    created: list[str] = field(default_factory=list)
    commit: str | None = None
    ledger_path: Path | None = None
    ledger_created: bool = False
    signer: str | None = None
    signer_key: str | None = None
    signer_listed: bool = False  # is the signing key in the committed .kavi/allowed_signers?
    root: str | None = None  # the forge's trust root (its id), once it has one
    configured: list[str] = field(default_factory=list)


def _default_files(target_branch: str, signer_line: str | None) -> dict[str, str]:
    from kavi.policy.model import Policy
    from kavi.yamlio import dump_model

    config = ForgeConfig(target_branch=target_branch)
    signers = _SIGNERS_HEADER + (signer_line + "\n" if signer_line else "")
    return {
        CONFIG_FILE: _CONFIG_HEADER + dump_model(config),
        POLICY_FILE: _POLICY_HEADER + dump_model(Policy()),
        SIGNERS_FILE: signers,
    }


def init_forge(
    start: Path | None = None, *, target_branch: str | None = None, wait: float = 0.0
) -> InitResult:
    from kavi.forge.lock import forge_lock
    from kavi.gitstore.repo import GitRepo

    location = locate(start)
    repo = GitRepo.open(location.workdir)
    if repo.is_bare:
        raise NotAForgeError(
            "git kavi init needs a working tree; this repository is bare",
            remedy="run init in a clone; protect a bare server repository with "
            "`git kavi hooks install --server <bare-repo>`",
        )
    fresh = not location.kavi_dir.exists()
    try:
        with forge_lock(location.kavi_dir, "init", wait=wait):
            return _init(location, repo, target_branch)
    except BaseException:
        if fresh:  # leave nothing behind: the lock file was all this init wrote there
            from kavi.forge.lock import LOCK_FILE

            if [p.name for p in location.kavi_dir.iterdir()] == [LOCK_FILE]:
                (location.kavi_dir / LOCK_FILE).unlink()
                location.kavi_dir.rmdir()
        raise


def _init(location: RepoLocation, repo: GitRepo, target_branch: str | None) -> InitResult:
    from kavi.artifacts.vault import atomic_write
    from kavi.ledger.reducer import EventKind
    from kavi.ledger.store import Ledger
    from kavi.signing import user_signer_or_none

    workdir = location.workdir
    existing_config = workdir / CONFIG_FILE
    if existing_config.exists():
        from kavi.config import load_config

        branch = load_config(workdir).target_branch
        if target_branch and target_branch != branch:
            raise ConfigError(
                f"this forge already targets branch {branch!r}",
                remedy=f"edit target_branch in {CONFIG_FILE} (a signed governance change)",
            )
    else:
        branch = target_branch or repo.head_branch() or "main"
    result = InitResult(workdir=workdir, target_branch=branch)

    signer = user_signer_or_none(repo)
    signer_line = None
    if signer is not None:
        signer_line = f'{signer.principal} namespaces="git" {signer.public_key}'
        result.signer = signer.principal
        result.signer_key = signer.fingerprint

    # Everything is prepared in memory first; the working tree is touched only after
    # the commit exists and the branch moved, so a failure leaves no files behind.
    files = _default_files(branch, signer_line)
    contents: dict[str, bytes] = {}
    for rel, text in files.items():
        path = workdir / rel
        if path.exists():
            contents[rel] = path.read_bytes()
        else:
            contents[rel] = text.encode("utf-8")
            result.created.append(rel)
    config = ForgeConfig.model_validate(_yaml_dict(contents[CONFIG_FILE].decode()))
    ignore_line = f"/{config.vault_dir}/"
    gitignore = workdir / ".gitignore"
    current = gitignore.read_text(encoding="utf-8") if gitignore.exists() else ""
    if ignore_line not in current.splitlines():
        sep = "" if not current or current.endswith("\n") else "\n"
        current = f"{current}{sep}# Kavi vault (derived artifacts)\n{ignore_line}\n"
        result.created.append(".gitignore")
    contents[".gitignore"] = current.encode("utf-8")

    tip = repo.branch_tip(branch)
    changes: dict[str, tuple[int, str] | None] = {}
    for rel, data in contents.items():
        oid = repo.write_blob(data)
        entry = repo.entry(tip, rel) if tip else None
        if entry is None or entry.oid != oid:
            changes[rel] = (0o100644, oid)
    if changes:
        head = repo.head_branch()
        if head != branch:
            raise GitError(
                f"the governance files must be committed on {branch!r}, but HEAD is on {head!r}",
                remedy=f"`git switch {branch}` and run `git kavi init` again",
            )
        dirty = repo.staged_paths(list(changes))
        if dirty:
            raise GitError(
                "staged changes in the way: " + ", ".join(dirty),
                why="init commits these paths and would mix your staged changes into its commit",
                remedy="commit or unstage them (`git restore --staged <path>`), then re-run init",
            )
        tree = repo.update_tree(repo.commit_tree(tip) if tip else None, changes)
        message = (
            "kavi: initialise forge governance\n\n"
            f"Adds {KAVI_DIR}/config.yaml, {KAVI_DIR}/policy.yaml and "
            f"{KAVI_DIR}/allowed_signers.\n\nKavi-Action: init\n"
        )
        commit = repo.write_commit(tree=tree, parents=[tip] if tip else [], message=message, signer=signer)
        repo.set_ref(f"refs/heads/{branch}", commit, message="kavi: init", old=tip or ZERO)
        for rel, data in contents.items():
            path = workdir / rel
            if path.exists() and path.read_bytes() != data:
                atomic_write(path, data)
        result.commit = commit
    _settle_checkout(repo, workdir, branch, list(contents))
    _trust_facts(location, repo, branch, signer, result)  # reads the checked-out configuration

    result.configured = _configure_git(repo)

    ledger_path = location.ledger_path
    result.ledger_created = not ledger_path.exists()
    result.ledger_path = ledger_path
    if result.ledger_created:
        from kavi.forge.context import Forge
        from kavi.forge.ledger_rescue import move_stray_wal
        from kavi.ledger.mark import read_mark

        if repo.ref_target(LEDGER_REF) is not None:
            # a clone of an existing forge: its ledger comes from the mirror, every signature checked
            from kavi.ledger.autoimport import ensure_ledger

            ensure_ledger(Forge(location))
            return result
        if read_mark(location.ledger_mark) is not None:
            from kavi.forge.importer import import_ledger

            import_ledger(Forge(location))  # a deleted ledger: rebuilt only if nothing is lost
        move_stray_wal(ledger_path)
    with Ledger.open(ledger_path, create=True, mark=location.ledger_mark) as ledger:
        if ledger.meta("forge.target_branch") is None:
            with ledger.transaction(actor=_actor(repo)) as txn:
                txn.record(
                    EventKind.FORGE_INITIALIZED,
                    subject_id="forge",
                    payload={
                        "target_branch": branch,
                        "governance_commit": result.commit or repo.branch_tip(branch) or "",
                    },
                )
    return result


def _trust_facts(
    location: RepoLocation, repo: GitRepo, branch: str, signer: SshSigner | None, result: InitResult
) -> None:
    """Report the truth about the committed keys; pin the root this commit made (if any)."""
    from kavi.forge.context import Forge
    from kavi.gitstore.protected import signer_lines
    from kavi.sshsig import principals_for_key

    tip = repo.branch_tip(branch)
    committed = (repo.file_bytes(tip, SIGNERS_FILE) or b"").decode("utf-8", "replace") if tip else ""
    if signer is not None:
        result.signer_listed = bool(principals_for_key(committed, signer.public_key))
    if not signer_lines(committed):
        return  # keyless: no root is recorded; `git kavi trust add` makes the first key the root
    from kavi.forge.trust import load_pin, pin_root, trust_state
    from kavi.gitstore.trustchain import TrustRoot

    forge = Forge(location)
    if result.commit is not None and load_pin(forge) is None:
        parents = repo.commit_meta(result.commit)[1]
        had = parents and signer_lines((repo.file_bytes(parents[0], SIGNERS_FILE) or b"").decode())
        if not had:
            pin_root(forge, TrustRoot(committed, result.commit), "init")
    result.root = trust_state(forge).forge_id


def _settle_checkout(repo: GitRepo, workdir: Path, branch: str, paths: list[str]) -> None:
    """The checkout follows the committed governance files, last: missing files are written
    and files holding the committed bytes are staged — also when an earlier init was killed
    after moving the branch (a re-run then finishes it). Local edits are left alone."""
    from kavi.artifacts.vault import atomic_write

    tip = repo.branch_tip(branch)
    if tip is None or repo.head_branch() != branch:
        return
    settled = []
    for rel in paths:
        data = repo.file_bytes(tip, rel)
        if data is None:
            continue
        path = workdir / rel
        if not path.exists():
            atomic_write(path, data)  # a killed init leaves the whole file or none
        if path.read_bytes() == data:
            settled.append(rel)
    lagging = repo.staged_paths(settled)
    if lagging:
        repo.stage_paths(tip, lagging)


def _actor(repo: GitRepo) -> str:
    name, email = repo.config_get("user.name"), repo.config_get("user.email")
    return f"{name} <{email}>" if name and email else "unknown"


def _yaml_dict(text: str) -> dict[str, object]:
    from kavi.yamlio import load_yaml

    data = load_yaml(text, source=CONFIG_FILE, error=ConfigError)
    return data if isinstance(data, dict) else {}


def _configure_git(repo: GitRepo) -> list[str]:
    done: list[str] = []
    if not repo.config_get("gpg.ssh.allowedSignersFile"):
        signers = str(repo.workdir / SIGNERS_FILE)
        repo.config_set("gpg.ssh.allowedSignersFile", signers)
        done.append(f"gpg.ssh.allowedSignersFile={signers}")
    if not {NOTES_REF, NOTES_DISPLAY} & set(repo.config_get_all("notes.displayRef")):
        repo.config_add("notes.displayRef", NOTES_DISPLAY)
        done.append(f"notes.displayRef={NOTES_DISPLAY}")
    from kavi.forge.remotes import configure

    done += configure(repo.workdir).lines()  # fetch refspecs only: pushing stays as it was (D062)
    return done
