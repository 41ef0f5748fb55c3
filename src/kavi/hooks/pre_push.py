"""Client-side ``pre-push`` entry point: refuse locally what the server hook would reject.

git passes ``<remote name> <url>`` as arguments and ``<local ref> <local oid> <remote ref>
<remote oid>`` lines on stdin. The same rules as the server run against the remote's
state as this clone knows it (its remote-tracking refs), with the trust root taken from
this forge's committed ``.kavi/allowed_signers``. ``git push --no-verify`` skips it.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    from kavi.gitstore.hookcheck import HookChecker, HookConfig, Pinned, Update
    from kavi.gitstore.repo import GitRepo
    from kavi.layout import SIGNERS_FILE

    remote = argv[0] if argv else "origin"
    repo = GitRepo.open(".")
    updates = []
    for line in sys.stdin.read().splitlines():
        parts = line.split()
        if len(parts) == 4:
            updates.append(Update(parts[3], parts[1], parts[2]))
    before = {}
    for name, target in repo.refs(f"refs/remotes/{remote}/").items():
        if target.startswith("ref: "):
            continue  # a dangling symbolic ref (e.g. origin/HEAD): no object to compare
        before["refs/heads/" + name[len(f"refs/remotes/{remote}/") :]] = target
    for u in updates:
        before[u.ref] = u.old
    from kavi.forge.context import Forge

    forge = Forge.open()
    config = forge.committed_config
    head = repo.branch_tip(config.target_branch)
    signers = repo.file_bytes(head, SIGNERS_FILE) if head else None
    pinned = Pinned(
        signers=signers.decode("utf-8", "replace") if signers else "",
        config=HookConfig(tuple(config.protected), config.skills_dir, config.tests_dir),
    )
    rejections = HookChecker(repo, pinned, updates, before=before).check()
    for r in rejections:
        sys.stderr.write(r.render(repo).replace("kavi: REJECTED", "kavi: the server will reject") + "\n")
    if rejections:
        sys.stderr.write(
            "kavi: push stopped before it reached the server (skip with `git push --no-verify`)\n"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
