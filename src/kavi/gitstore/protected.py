"""Which paths Kavi protects: the layout a commit is governed by, and the path rule.

A forge's layout (``.kavi/config.yaml``) names its protected branches, its target
branch, and where skills and their tests live. A path is protected when, compared as
the most forgiving filesystem git runs on reads names (:func:`kavi.textsafe.fold`, NTFS
short names, trailing dots and spaces), it is

* governance: ``.kavi/**``, or a ``.gitattributes`` on the way to or inside a protected
  directory (it changes the bytes a checkout writes);
* skill content: ``<skills_dir>/**`` or ``<tests_dir>/test_skill_*.py`` of any layout in
  force, or a file a registry entry still names (after a ``skills_dir`` move the ledger
  keeps trusting skills at their old paths).

Standard library only (no pygit2): the rule is a function of names.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kavi.layout import KAVI_DIR
from kavi.textsafe import fold, fold_component, same_component


@dataclass(frozen=True)
class Layout:
    """The part of ``.kavi/config.yaml`` the trust rules need."""

    protected: tuple[str, ...] = ("main",)
    skills_dir: str = "skills"
    tests_dir: str = "tests"
    target_branch: str = "main"

    @property
    def registry_path(self) -> str:
        return f"{self.skills_dir}/registry.yaml"

    def skill_file(self, name: str) -> str:
        return f"{self.skills_dir}/{name}.py"

    def test_file(self, name: str) -> str:
        return f"{self.tests_dir}/test_skill_{name}.py"

    def same_dirs(self, other: Layout) -> bool:
        return (self.skills_dir, self.tests_dir) == (other.skills_dir, other.tests_dir)

    def to_dict(self) -> dict[str, object]:
        return {
            "protected": list(self.protected),
            "skills_dir": self.skills_dir,
            "tests_dir": self.tests_dir,
            "target_branch": self.target_branch,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Layout:
        protected = data.get("protected", ["main"])
        names = tuple(str(b) for b in protected) if isinstance(protected, list) and protected else ("main",)
        return cls(
            protected=names,
            skills_dir=str(data.get("skills_dir", "skills")),
            tests_dir=str(data.get("tests_dir", "tests")),
            target_branch=str(data.get("target_branch", names[0])),
        )

    @classmethod
    def from_config(cls, config: Any) -> Layout:
        """From a :class:`kavi.config.ForgeConfig`."""
        return cls(tuple(config.protected), config.skills_dir, config.tests_dir, str(config.target_branch))


def signer_lines(text: str) -> frozenset[str]:
    """The entries of an allowed-signers file, compared verbatim (comments and blanks aside).

    Verbatim on purpose: ``ssh-keygen`` reads lines Kavi's own parser would skip, so
    "has keys" and "is the pinned root" are decided on the lines themselves."""
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    )


def governance_path(path: str) -> bool:
    """``.kavi/**`` or a ``.gitattributes``: changed only by a commit signed with a trusted key."""
    if path == KAVI_DIR or path.startswith(KAVI_DIR + "/"):
        return True
    return same_component(fold_component(path.rsplit("/", 1)[-1]), ".gitattributes")


def _parts(path: str) -> list[str]:
    return [fold_component(c) for c in path.split("/") if c]


def _under(parts: Sequence[str], prefix: Sequence[str], *, exact: bool = False) -> bool:
    """Do the folded components ``parts`` start with (or, ``exact``, equal) ``prefix``?"""
    if len(parts) < len(prefix) or (exact and len(parts) != len(prefix)):
        return False
    return all(same_component(a, b) for a, b in zip(parts, prefix, strict=False))


class PathRule:
    """Is a path protected under ``layouts`` (plus files registry entries still name)?"""

    def __init__(self, layouts: Sequence[Layout], extra_files: Sequence[str] = ()) -> None:
        unique: list[Layout] = []
        for layout in layouts:
            if not any(layout.same_dirs(u) for u in unique):
                unique.append(layout)
        self.layouts = tuple(unique)
        # files registry entries name, by their number of components, folded when first
        # needed: a registry of a thousand skills costs nothing to a commit of other paths
        self._extra_raw: dict[int, list[str]] = {}
        for f in extra_files:
            self._extra_raw.setdefault(len([c for c in f.split("/") if c]), []).append(f)
        self._extra: dict[int, tuple[list[str], ...]] = {}
        self._dirs: list[tuple[str, str | None, str | None, list[list[str]]]] = [
            (fold(KAVI_DIR), fold(lay.skills_dir), fold(lay.tests_dir), _dir_parts(lay))
            for lay in self.layouts
        ]
        if not self._dirs:
            self._dirs = [(fold(KAVI_DIR), None, None, [_parts(KAVI_DIR)])]

    def __call__(self, path: str) -> bool:
        if not path:
            return False
        p = fold(path)
        parts = [fold_component(c) for c in path.split("/")]
        for kavi, skills, tests, dirs in self._dirs:
            for prefix in (kavi, skills):
                if prefix is not None and (p == prefix or p.startswith(prefix + "/")):
                    return True
            if (
                tests is not None
                and p.startswith(tests + "/")
                and fnmatch.fnmatch(p[len(tests) + 1 :], "test_skill_*.py")
            ):
                return True
            # the same, as NTFS reads names (``KAVI~1/``, ``skills./``, ``TEST_S~1.PY``)
            if any(_under(parts, d) for d in dirs[:2]):
                return True
            if len(dirs) > 2 and _under(parts, [*dirs[2], "test_skill_*.py"], exact=True):
                return True
            # ``.gitattributes`` on the way to a protected directory, or in one
            if parts and same_component(parts[-1], ".gitattributes"):
                where = parts[:-1]
                if any(_under(d[: len(where)], where, exact=True) or _under(where, d) for d in dirs):
                    return True
        if parts and same_component(parts[-1], ".gitattributes"):
            where = parts[:-1]
            for n in [n for n in self._extra_raw if n > len(where)]:
                if any(_under(extra[:-1][: len(where)], where, exact=True) for extra in self._extras(n)):
                    return True
        return any(_under(parts, extra, exact=True) for extra in self._extras(len(parts)))

    def _extras(self, components: int) -> tuple[list[str], ...]:
        """The registry's files of ``components`` components, folded."""
        found = self._extra.get(components)
        if found is None:
            found = self._extra[components] = tuple(_parts(f) for f in self._extra_raw.get(components, ()))
        return found


def _dir_parts(layout: Layout) -> list[list[str]]:
    return [_parts(KAVI_DIR), _parts(layout.skills_dir), _parts(layout.tests_dir)]
