"""``files`` backend: copy the two expected files from a directory into the sandbox.

For offline use, demos, and humans who write a skill themselves. ``--from DIR`` is laid
out like the repository: ``DIR/<skills_dir>/<name>.py`` and
``DIR/<tests_dir>/test_skill_<name>.py`` (``skills/write_note.py`` and
``tests/test_skill_write_note.py`` by default). Exactly those two paths are taken;
anything else in the directory (``__pycache__``, ``.mypy_cache``, notes, other skills)
is ignored and named in the transcript. Each is copied as it is — a symlink stays a
symlink, an executable bit stays — so the same gates judge it as they would judge an
LLM's output.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from kavi.backends.base import BackendRequest, BackendResult
from kavi.errors import ValidationError

MAX_IGNORED_LISTED = 20


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
        missing = [rel for rel in request.allowed_paths if not os.path.lexists(self.source / rel)]
        ignored = self._ignored(request.allowed_paths)
        lines = [f"files backend: taking {', '.join(request.allowed_paths)} from {self.source}"]
        if missing:
            flat = [rel for rel in missing if (self.source / Path(rel).name).is_file()]
            hint = (
                f" ({', '.join(Path(r).name for r in flat)} found at the top level: put each file at its "
                "path in the repository)"
                if flat
                else ""
            )
            reason = f"--from {self.source} has no {' and no '.join(missing)}{hint}"
            return BackendResult(ok=False, reason=reason, transcript="\n".join([*lines, reason]) + "\n")
        copied: list[str] = []
        for rel in request.allowed_paths:
            target = request.sandbox / rel
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.is_symlink() or target.exists():
                    target.unlink()
                shutil.copy2(self.source / rel, target, follow_symlinks=False)
            except OSError as exc:
                return BackendResult(ok=False, reason=f"copying {rel} from {self.source} failed: {exc}")
            copied.append(rel)
        lines += [f"  copied {rel}" for rel in copied]
        if ignored:
            shown = ignored[:MAX_IGNORED_LISTED]
            more = f" and {len(ignored) - len(shown)} more" if len(ignored) > len(shown) else ""
            lines.append(f"  ignored (not one of the two files): {', '.join(shown)}{more}")
        return BackendResult(
            ok=True, transcript="\n".join(lines) + "\n", details={"copied": copied, "ignored": len(ignored)}
        )

    def _ignored(self, allowed: tuple[str, ...]) -> list[str]:
        out: list[str] = []
        for dirpath, dirnames, filenames in os.walk(self.source):
            rel_dir = Path(dirpath).relative_to(self.source)
            dirnames.sort()
            for name in sorted(filenames) + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                rel = (rel_dir / name).as_posix()
                if rel not in allowed:
                    out.append(rel)
            if len(out) > 10_000:
                break
        return sorted(out)
