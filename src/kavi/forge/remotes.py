"""Remotes: Kavi's refs are fetched from every remote; what a plain ``git push`` does is left alone.

Every remote fetches ``refs/kavi/*``, ``refs/notes/kavi`` and ``refs/tags/kavi/*`` (no
``+``: a rewritten ledger, notes or tag is refused by ``git fetch``, not taken). ``init``
adds these fetch refspecs, and so does every Kavi command that opens the forge, for a
remote added later — cheaply: only when ``.git/config`` changed since the last look.

Pushing is never configured (D063): a ``remote.<name>.push`` entry would change what a
plain ``git push`` does on every branch. Kavi's refs are pushed explicitly
(:func:`push_command`, ``git kavi push``). The push refspecs an earlier ``init`` added
(``HEAD`` plus Kavi's three, D008) are removed again, only where all four are present.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

NOTES_REF = "refs/notes/kavi"
LEDGER_REF = "refs/kavi/ledger"
FETCH_SPECS = (
    "refs/kavi/*:refs/kavi/*",
    f"{NOTES_REF}:{NOTES_REF}",
    "refs/tags/kavi/*:refs/tags/kavi/*",
)
OLD_PUSH_SPECS = ("HEAD", *FETCH_SPECS)  # what `init` used to add (D008, superseded by D063)
PUSH_REFS = ("refs/tags/kavi/*", NOTES_REF, LEDGER_REF)
STAMP = "remotes.checked"  # under <git-common-dir>/kavi/cache: the config file last looked at


@dataclass
class RemoteChanges:
    added: list[str] = field(default_factory=list)  # "remote.<name>.fetch+=<spec>"
    removed: list[str] = field(default_factory=list)  # "remote.<name>.push-=<spec>"

    def lines(self) -> list[str]:
        return self.added + self.removed


def push_command(remote: str, branch: str) -> str:
    """The command that publishes the target branch and Kavi's refs (as printed in hints)."""
    import shlex

    return " ".join(["git", "push", shlex.quote(remote), shlex.quote(branch), *map(shlex.quote, PUSH_REFS)])


def push_refs(workdir: Path, remote: str, branch: str) -> list[str]:
    """What ``git kavi push`` pushes: the branch and those of Kavi's refs this clone has
    (an explicit ref that does not exist yet would fail the whole push)."""
    refs = [branch, PUSH_REFS[0]]
    for ref in PUSH_REFS[1:]:
        if _git(workdir, "rev-parse", "--verify", "--quiet", ref).returncode == 0:
            refs.append(ref)
    return refs


def _git(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=workdir, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )


def remote_specs(workdir: Path) -> dict[str, dict[str, list[str]]]:
    """``{remote: {"fetch": [...], "push": [...]}}`` for every remote with a URL."""
    done = _git(workdir, "config", "--get-regexp", r"^remote\..*\.(url|fetch|push)$")
    out: dict[str, dict[str, list[str]]] = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition(" ")
        name, _, kind = key[len("remote.") :].rpartition(".")
        entry = out.setdefault(name, {"fetch": [], "push": [], "url": []})
        entry[kind].append(value)
    return {name: specs for name, specs in out.items() if specs["url"]}


def configure(workdir: Path) -> RemoteChanges:
    """Add Kavi's fetch refspecs to every remote missing them; remove the push refspecs
    an earlier ``init`` added. Returns what changed."""
    changes = RemoteChanges()
    for name, specs in remote_specs(workdir).items():
        for spec in FETCH_SPECS:
            if spec not in specs["fetch"]:
                _git(workdir, "config", "--add", f"remote.{name}.fetch", spec)
                changes.added.append(f"remote.{name}.fetch+={spec}")
        if all(spec in specs["push"] for spec in OLD_PUSH_SPECS):
            for spec in OLD_PUSH_SPECS:
                _git(workdir, "config", "--unset", f"remote.{name}.push", f"^{re.escape(spec)}$")
                changes.removed.append(f"remote.{name}.push-={spec}")
    return changes


def _config_stamp(common_dir: Path) -> str | None:
    try:
        st = os.stat(common_dir / "config")
    except OSError:
        return None
    return f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"


def keep_configured(workdir: Path, common_dir: Path, kavi_dir: Path) -> RemoteChanges:
    """:func:`configure`, but only when the repository's config changed since the last
    look (one ``stat`` otherwise); says on stderr what it changed."""
    stamp_file = kavi_dir / "cache" / STAMP
    stamp = _config_stamp(common_dir)
    try:
        if stamp is not None and stamp_file.read_text(encoding="utf-8") == stamp:
            return RemoteChanges()
    except OSError:
        pass
    changes = configure(workdir)
    for line in changes.added:
        sys.stderr.write(f"kavi: {line.replace('+=', ' now fetches ')} (Kavi's refs travel with fetch)\n")
    if changes.removed:
        names = sorted({line.split(".")[1] for line in changes.removed})
        sys.stderr.write(
            f"kavi: removed the push refspecs an earlier `git kavi init` added to {', '.join(names)} "
            "(a plain `git push` pushes what it did before Kavi); push Kavi's refs with "
            "`git kavi push`\n"
        )
    try:
        stamp_file.parent.mkdir(parents=True, exist_ok=True)
        stamp_file.write_text(_config_stamp(common_dir) or "", encoding="utf-8")
    except OSError:
        pass  # a stamp that cannot be written costs one `git config` next time
    return changes
