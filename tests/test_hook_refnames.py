# ruff: noqa: F811  (the fixtures imported from test_hook are requested by parameter name)
"""Ref names as git writes them: a no-break space or a Unicode line separator in a name is
part of the name, never a field or line separator of the hook's input."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kavi.hooks.updates import UnreadableUpdate, read_updates
from support.forge import git
from test_hook import (  # noqa: F401  (fixtures are looked up by name)
    ALL_REFS,
    Served,
    promoted,
    served,
    served_template,
)

NB, LS = "\u00a0", "\u2028"
A, B = "a" * 40, "b" * 40


def test_the_input_is_split_on_newlines_and_single_spaces_only() -> None:
    data = f"{A} {B} refs/tags/kavi/x/v9{NB}\n{A} {B} refs/heads/a{LS}b\n".encode()
    assert read_updates(data, fields=3, oids=(0, 1)) == [
        (A, B, f"refs/tags/kavi/x/v9{NB}"),
        (A, B, f"refs/heads/a{LS}b"),
    ]
    assert read_updates(b"", fields=3, oids=(0, 1)) == []
    for bad in (
        f"{A} {B} refs/heads/x extra\n",  # a field too many
        f"{A}  {B} refs/heads/x\n",  # two spaces
        f"{A} {B}\n",  # a field missing
        f"{A[:39]} {B} refs/heads/x\n",  # not an object id
        f"{A} {B} refs/heads/\x01x\n",  # a control character
    ):
        with pytest.raises(UnreadableUpdate):
            read_updates(bad.encode(), fields=3, oids=(0, 1))
    with pytest.raises(UnreadableUpdate, match="not UTF-8"):
        read_updates(A.encode() + b" " + B.encode() + b" refs/heads/\xff\n", fields=3, oids=(0, 1))


def _push(repo: Path, *specs: str) -> subprocess.CompletedProcess[str]:
    argv = ["git", "push", "--porcelain", "origin", *specs]
    return subprocess.run(argv, cwd=repo, capture_output=True, text=True)


@pytest.mark.slow
def test_look_alike_names_with_unicode_spaces_are_judged_as_themselves(promoted: Served) -> None:
    repo = promoted.repo
    head = git("rev-parse", "HEAD", cwd=repo)
    before = promoted.server_refs()
    for spec in (
        f"{head}:refs/kavi/ledger/{NB}x",  # would block refs/kavi/ledger for good
        f"{head}:refs/tags/kavi/write_note/v9{NB}x",  # an unsigned Kavi-looking tag
        f"{head}:refs/notes/kavi{NB}x",  # a look-alike notes ref
        f"{head}:refs/kavi/ledger{NB}",
    ):
        res = subprocess.run(
            ["git", "push", "--porcelain", "origin", spec], cwd=repo, capture_output=True, text=True
        )
        assert res.returncode != 0, (spec, res.stderr)
        assert "kavi: REJECTED" in res.stderr, res.stderr
    assert promoted.server_refs() == before
    again = subprocess.run(
        ["git", "push", "--porcelain", "origin", *ALL_REFS], cwd=repo, capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr
