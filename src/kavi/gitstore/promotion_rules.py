"""Promotions, revocations and their tags, as the trust rule judges them.

A promotion merge (``Kavi-Action: promote``, parents ``[target, build]``) may change
exactly the skill file, its test and the registry of the layout at its first parent,
with the blobs its trailers name, the skill and test equal to the build commit's, the
registry's other entries untouched and the skill's entry matching the blobs. A
revocation (one parent) deletes exactly the files the registry entry names and leaves
"registry minus the skill". Both are signed by a key trusted at their first parent and
bound by a signed tag of this forge (``Kavi-Forge``) naming the same commit and tree.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from kavi.gitstore.objects import TagInfo, read_tag, trailers
from kavi.gitstore.repo import MODE_BLOB, RawDelta
from kavi.gitstore.trustchain import PROMOTE_REMEDY, Rejection, Scope

if TYPE_CHECKING:
    from kavi.gitstore.protected import Layout
    from kavi.gitstore.trustchain import Judge

_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
BLOB_KEYS = ("Kavi-Skill-Blob", "Kavi-Test-Blob", "Kavi-Registry-Blob")
REVOKE_REMEDY = "revoke skills with `git kavi revoke-skill <name>` (signed by a trusted key) and push its tag"


def declared_tag(fields: dict[str, str]) -> str | None:
    """The tag a Kavi promotion or revocation commit says binds it."""
    if fields.get("Kavi-Action") == "promote":
        return f"kavi/{fields.get('Kavi-Skill', '')}/v{fields.get('Kavi-Version', '')}"
    if fields.get("Kavi-Action") == "revoke":
        return fields.get("Kavi-Tag") or None
    return None


def _changed(judge: Judge, parent: str, commit: str) -> dict[str, RawDelta]:
    return {d.path: d for d in judge.repo.diff_raw(judge.gov.tree(parent), judge.gov.tree(commit))}


def check_promotion(
    judge: Judge,
    scope: Scope,
    commit: str,
    parents: tuple[str, ...],
    f: dict[str, str],
    layout: Layout,
) -> Rejection | None:
    remedy = PROMOTE_REMEDY.format(branch=scope.branch)
    ref = scope.ref
    parent, build = parents[0], parents[1]
    verdict = judge.signed(commit, parent, scope)
    if not verdict.ok:
        why = (
            "unsigned"
            if verdict.detail == "unsigned"
            else f"not signed by an allowed signer ({verdict.detail})"
        )
        return Rejection(ref, "promotion-signature", f"promotion merge is {why}", remedy, commit=commit)
    name, version = f.get("Kavi-Skill", ""), f.get("Kavi-Version", "")
    skill_path, test_path, registry_path = (
        layout.skill_file(name),
        layout.test_file(name),
        layout.registry_path,
    )
    if (
        not _NAME.fullmatch(name)
        or f.get("Kavi-Skill-Path") != skill_path
        or f.get("Kavi-Test-Path") != test_path
    ):
        return Rejection(
            ref,
            "promotion-paths",
            f"promotion of {name!r} names paths that are not the skill layout at its parent "
            f"({skill_path}, {test_path})",
            remedy,
            commit=commit,
        )
    expected = {skill_path: f.get("Kavi-Skill-Blob"), test_path: f.get("Kavi-Test-Blob")}
    expected[registry_path] = f.get("Kavi-Registry-Blob")
    for path, delta in _changed(judge, parent, commit).items():
        if path not in expected:
            return Rejection(
                ref,
                "promotion-extra-path",
                f"promotion merge of {name} also changes {path}; a promotion may only add the skill, "
                "its test and the registry entry",
                remedy,
                commit=commit,
                path=path,
            )
        if delta.status not in ("ADDED", "MODIFIED") or delta.new_mode != MODE_BLOB:
            return Rejection(
                ref,
                "promotion-mode",
                f"promotion merge {delta.status.lower()}s {path} (mode {delta.new_mode:o}); "
                "only regular 100644 files",
                remedy,
                commit=commit,
                path=path,
            )
        if delta.new_oid != expected[path]:
            return Rejection(
                ref,
                "promotion-binding",
                f"{path} in the merge tree ({delta.new_oid[:12]}) is not the blob the promotion "
                f"names ({(expected[path] or '-')[:12]})",
                remedy,
                commit=commit,
                path=path,
            )
    for path in (skill_path, test_path):
        entry = judge.repo.entry(judge.gov.tree(build), path)
        if entry is None or entry.oid != expected[path]:
            return Rejection(
                ref,
                "promotion-build-mismatch",
                f"{path} in the merge differs from the build commit {build[:12]} it claims to promote",
                remedy,
                commit=commit,
                path=path,
            )
    problem = _registry_problem(judge, parent, commit, layout, name, version, expected, skill_path, test_path)
    if problem:
        return Rejection(ref, "registry-mismatch", problem, remedy, commit=commit, path=registry_path)
    return check_binding(
        judge, scope, commit, parent, f"kavi/{name}/v{version}", f, "promotion-binding", remedy
    )


def _registry_problem(
    judge: Judge,
    parent: str,
    commit: str,
    layout: Layout,
    name: str,
    version: str,
    expected: dict[str, str | None],
    skill_path: str,
    test_path: str,
) -> str | None:
    path = layout.registry_path
    before, after = judge.gov.registry(parent, layout), judge.gov.registry(commit, layout)
    if after is None or before is None:
        return f"{path} is not a valid Kavi registry"
    entry = after.get(name)
    if entry is None:
        return f"{path} has no entry for {name}"
    blob = expected[skill_path]
    data = judge.repo.read_blob(blob) if blob and judge.repo.has_object(blob) else b""
    wanted = {
        "version": int(version) if version.isdigit() else version,
        "blob": blob,
        "test_blob": expected[test_path],
        "file": skill_path,
        "test_file": test_path,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    for key, value in wanted.items():
        if entry.get(key) != value:
            return f"{path} records {key}={entry.get(key)!r} for {name}, the promotion says {value!r}"
    others_before = {n: e for n, e in before.items() if n != name}
    others_after = {n: e for n, e in after.items() if n != name}
    if others_before != others_after:
        changed = sorted(set(others_before) ^ set(others_after)) or sorted(
            n for n in others_after if others_after[n] != others_before.get(n)
        )
        return f"the promotion of {name} also changes the registry entries of {', '.join(changed)}"
    return None


def check_binding(
    judge: Judge,
    scope: Scope,
    commit: str,
    parent: str,
    tag_name: str,
    f: dict[str, str],
    rule: str,
    remedy: str,
) -> Rejection | None:
    """The signed tag ``tag_name`` of this forge binds ``commit`` and its tree (and blobs)."""
    ref = f"refs/tags/{tag_name}"
    tag_oid = judge.tag_of(ref)
    if tag_oid is None or set(tag_oid) == {"0"}:
        return Rejection(
            scope.ref,
            rule,
            f"no signed tag {tag_name} binds this commit (push the tag in the same push)",
            remedy + f"; push with `git push origin {scope.ref} {ref}`",
            commit=commit,
        )
    tag = read_tag(judge.repo, tag_oid)
    if tag is None:
        return Rejection(scope.ref, rule, f"{ref} is not an annotated tag", remedy, commit=commit)
    verdict = judge.tag_signed(tag, parent, scope)
    if not verdict.ok:
        return Rejection(
            scope.ref,
            rule,
            f"tag {tag_name} is not signed by an allowed signer ({verdict.detail})",
            remedy,
            commit=commit,
        )
    return binding_problem(judge, scope, tag, commit, f, rule, remedy)


def binding_problem(
    judge: Judge, scope: Scope, tag: TagInfo, commit: str, f: dict[str, str], rule: str, remedy: str
) -> Rejection | None:
    tf = trailers(tag.message)
    tree = judge.gov.tree(commit)
    if tag.target != commit or tf.get("Kavi-Tree") != tree:
        return Rejection(
            scope.ref,
            rule,
            f"tag {tag.name} binds {tag.target[:12]} / tree {tf.get('Kavi-Tree', '-')[:12]}, "
            "not this commit and tree",
            remedy,
            commit=commit,
        )
    keys = BLOB_KEYS if f.get("Kavi-Action") == "promote" else ("Kavi-Registry-Blob",)
    for key in keys:
        if tf.get(key) != f.get(key):
            return Rejection(
                scope.ref, rule, f"tag {tag.name} and the commit disagree on {key}", remedy, commit=commit
            )
    forge = judge.forge_id
    if forge is None or tf.get("Kavi-Forge") != forge:
        return Rejection(
            scope.ref,
            rule,
            f"tag {tag.name} belongs to forge {tf.get('Kavi-Forge', '(none)')[:12]}, not to this forge "
            f"({(forge or 'no trust root yet')[:12]})",
            "tags are made by `git kavi promote-skill` / `revoke-skill` in this forge",
            commit=commit,
        )
    return None


def check_revocation(
    judge: Judge,
    scope: Scope,
    commit: str,
    parent: str | None,
    f: dict[str, str],
    layout: Layout,
) -> Rejection | None:
    ref = scope.ref
    verdict = judge.signed(commit, parent, scope)
    if not verdict.ok:
        return Rejection(
            ref,
            "revocation-signature",
            f"revocation commit is not signed by an allowed signer ({verdict.detail})",
            REVOKE_REMEDY,
            commit=commit,
        )
    if parent is None:
        return Rejection(
            ref, "revocation-extra-path", "a revocation has a parent", REVOKE_REMEDY, commit=commit
        )
    name = f.get("Kavi-Skill", "")
    registry_path = layout.registry_path
    before = judge.gov.registry(parent, layout)
    entry = (before or {}).get(name)
    allowed: set[str] = set()
    if entry is not None:
        allowed = {str(entry.get("file", "")), str(entry.get("test_file", ""))}
    for path, delta in _changed(judge, parent, commit).items():
        if path in allowed and delta.status == "DELETED":
            continue
        if (
            path == registry_path
            and delta.status == "MODIFIED"
            and delta.new_oid == f.get("Kavi-Registry-Blob")
        ):
            continue
        return Rejection(
            ref,
            "revocation-extra-path",
            f"revocation of {name} also changes {path}",
            REVOKE_REMEDY,
            commit=commit,
            path=path,
        )
    after = judge.gov.registry(commit, layout)
    if (
        before is None
        or after is None
        or entry is None
        or after != {n: e for n, e in before.items() if n != name}
    ):
        return Rejection(
            ref,
            "registry-mismatch",
            f"{registry_path} after the revocation must be the registry before it minus {name}",
            REVOKE_REMEDY,
            commit=commit,
            path=registry_path,
        )
    tag_name = f.get("Kavi-Tag", "")
    if not tag_name.startswith(f"kavi/{name}/") or not tag_name.endswith("-revoked"):
        return Rejection(
            ref,
            "revocation-binding",
            f"no signed revocation tag {tag_name or '(none)'} binds this commit",
            REVOKE_REMEDY,
            commit=commit,
        )
    return check_binding(judge, scope, commit, parent, tag_name, f, "revocation-binding", REVOKE_REMEDY)


def tag_ref_problem(
    judge: Judge,
    scope: Scope,
    new: str,
    *,
    landed: Callable[[str], bool],
    fallback_signers: str,
) -> Rejection | None:
    """A new ``refs/tags/kavi/*`` ref: a signed annotated tag of this forge, named as the
    promotion or revocation it points at declares, on a protected branch after the push."""
    remedy = "Kavi tags are written once by `git kavi promote-skill` / `revoke-skill`; promote a new version"
    ref = scope.ref
    tag = read_tag(judge.repo, new)
    if tag is None:
        return Rejection(
            ref, "tag-not-annotated", "Kavi tags must be signed annotated tags", remedy, commit=new
        )
    if tag.name != ref[len("refs/tags/") :]:
        return Rejection(
            ref, "tag-name", f"the tag object is named {tag.name!r}, not {ref[len('refs/tags/') :]!r}", remedy
        )
    is_commit = tag.target_type == "commit" and judge.repo.object_type(tag.target) == "commit"
    if is_commit:
        parents = judge.gov.meta(tag.target)[1]
        verdict = judge.tag_signed(tag, parents[0] if parents else None, scope)
    else:
        verdict = judge.sigs.tag(tag, fallback_signers)
    if not verdict.ok:
        return Rejection(
            ref,
            "tag-signature",
            f"tag is not signed by an allowed signer ({verdict.detail})",
            remedy,
            commit=tag.target,
        )
    fields = trailers(judge.repo.commit(tag.target).message) if is_commit else {}
    where = "a promotion or revocation commit that names this tag"
    if not is_commit or declared_tag(fields) != tag.name:
        return Rejection(
            ref,
            "tag-target",
            f"a Kavi tag must point at {where}; {tag.target[:12]} is not one",
            remedy,
            commit=tag.target,
        )
    if not landed(tag.target):
        return Rejection(
            ref,
            "tag-target",
            f"{tag.target[:12]} is not on a protected branch (after this push): a Kavi tag names a "
            "promotion or revocation that landed",
            "push the branch with its promotion in the same push",
            commit=tag.target,
        )
    return binding_problem(judge, scope, tag, tag.target, fields, "tag-binding", remedy)
