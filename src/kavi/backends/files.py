"""``files`` backend: copy a directory's tree into the sandbox.

For offline use, demos, and humans who write a skill themselves. Everything in the
directory is copied as it is — symlinks stay symlinks, modes are kept — so the same
gates judge it as they would judge an LLM's output.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from kavi.backends.base import BackendRequest, BackendResult
from kavi.errors import ValidationError


class FilesBackend:
    name = "files"

    def __init__(self, source: Path) -> None:
        if not source.is_dir():
            raise ValidationError(
                f"--from {source} is not a directory",
                remedy="point --from at a directory laid out like the repository "
                "(e.g. skills/<name>.py and tests/test_skill_<name>.py)",
            )
        self.source = source.resolve()

    def run(self, request: BackendRequest) -> BackendResult:
        copied: list[str] = []
        for path in sorted(self.source.rglob("*")):
            if path.is_file() or path.is_symlink():
                copied.append(path.relative_to(self.source).as_posix())
        try:
            shutil.copytree(self.source, request.sandbox, symlinks=True, dirs_exist_ok=True)
        except (OSError, shutil.Error) as exc:
            return BackendResult(ok=False, reason=f"copying {self.source} failed: {exc}")
        transcript = f"files backend: copied {len(copied)} file(s) from {self.source}\n" + "".join(
            f"  {p}\n" for p in copied
        )
        return BackendResult(ok=True, transcript=transcript, details={"copied": copied})
