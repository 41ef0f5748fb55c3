"""Signed git objects Kavi writes by hand: annotated tags, notes commits, trailers.

Annotated tags are written as raw tag objects (``object``/``type``/``tag``/``tagger``
headers, message, then the armored SSH signature appended to the message — the
format ``git tag -s`` produces and ``git verify-tag`` checks). Notes live under
``refs/notes/kavi`` with 2/38 fan-out; Kavi builds the notes tree itself and commits
it signed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from kavi.errors import GitError
from kavi.gitstore.repo import MODE_BLOB, GitRepo, Person, Signer

SIG_BEGIN = "-----BEGIN SSH SIGNATURE-----"


def trailers(text: str) -> dict[str, str]:
    """``Key: value`` lines of a message (the last value wins for repeated keys)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z][A-Za-z0-9-]*): (.*)$", line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


def format_trailers(items: Mapping[str, object]) -> str:
    return "".join(f"{k}: {v}\n" for k, v in items.items() if v is not None and v != "")


@dataclass(frozen=True)
class TagInfo:
    id: str
    name: str
    target: str
    target_type: str
    tagger: str
    message: str  # without the signature
    signature: str | None
    payload: bytes  # the signed bytes


def write_signed_tag(
    repo: GitRepo, *, name: str, target: str, message: str, tagger: Person, signer: Signer
) -> str:
    """Write a signed annotated tag object (the ref is created by the caller)."""
    kind = repo.object_type(target)
    if kind is None:
        raise GitError(f"cannot tag {target}: no such object")
    body = message if message.endswith("\n") else message + "\n"
    payload = (f"object {target}\ntype {kind}\ntag {name}\ntagger {tagger.git_format()}\n\n{body}").encode()
    signature = signer.sign(payload)
    return repo.write_raw("tag", payload + signature.encode("ascii"))


def read_tag(repo: GitRepo, oid: str) -> TagInfo | None:
    kind, raw = repo.read_raw(oid)
    if kind != "tag":
        return None
    text = raw.decode("utf-8", "replace")
    head, _, message = text.partition("\n\n")
    headers = dict(line.split(" ", 1) for line in head.splitlines() if " " in line)
    signature = None
    payload = raw
    at = text.find(SIG_BEGIN)
    if at >= 0:
        signature = text[at:]
        payload = raw[: len(text[:at].encode("utf-8"))]
        message = message[: message.find(SIG_BEGIN)] if SIG_BEGIN in message else message
    return TagInfo(
        id=oid,
        name=headers.get("tag", ""),
        target=headers.get("object", ""),
        target_type=headers.get("type", ""),
        tagger=headers.get("tagger", ""),
        message=message,
        signature=signature,
        payload=payload,
    )


def notes_path(annotated: str) -> str:
    return f"{annotated[:2]}/{annotated[2:]}"


def read_note(repo: GitRepo, notes_commit: str | None, annotated: str) -> str | None:
    if notes_commit is None:
        return None
    for path in (notes_path(annotated), annotated):
        data = repo.file_bytes(notes_commit, path)
        if data is not None:
            return data.decode("utf-8", "replace")
    return None


def notes_commit(
    repo: GitRepo,
    *,
    parent: str | None,
    notes: Mapping[str, str],
    message: str,
    signer: Signer,
) -> str:
    """A signed notes commit adding ``notes`` (annotated object → text) on top of ``parent``
    (appending to notes already there). Only the object is written; no ref moves."""
    base_tree = repo.commit_tree(parent) if parent else None
    changes: dict[str, tuple[int, str] | None] = {}
    for annotated, text in notes.items():
        existing = read_note(repo, parent, annotated)
        body = text if existing is None else existing.rstrip("\n") + "\n\n" + text
        if not body.endswith("\n"):
            body += "\n"
        changes[notes_path(annotated)] = (MODE_BLOB, repo.write_blob(body.encode("utf-8")))
        if parent and repo.entry(parent, annotated) is not None:
            changes[annotated] = None  # normalise a flat note into the fan-out layout
    tree = repo.update_tree(base_tree, changes)
    return repo.write_commit(tree=tree, parents=[parent] if parent else [], message=message, signer=signer)


def add_notes(
    repo: GitRepo,
    *,
    ref: str,
    notes: Mapping[str, str],
    message: str,
    signer: Signer,
) -> str:
    """Commit ``notes`` onto ``ref`` (compare-and-swap against the tip it was built on)."""
    parent = repo.ref_target(ref)
    commit = notes_commit(repo, parent=parent, notes=notes, message=message, signer=signer)
    repo.set_ref(ref, commit, message="kavi: notes", old=parent or "0" * 40)
    return commit


def notes_present(repo: GitRepo, notes_tip: str | None, notes: Mapping[str, str]) -> bool:
    """Whether every note text is already part of the notes at ``notes_tip``."""
    for annotated, text in notes.items():
        found = read_note(repo, notes_tip, annotated)
        if found is None or text.strip() not in found:
            return False
    return True
