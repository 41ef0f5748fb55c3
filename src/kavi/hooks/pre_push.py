"""Client-side ``pre-push`` entry point: refuse locally what the server hook would reject.

git passes ``<remote name> <url>`` as arguments and ``<local ref> <local oid> <remote ref>
<remote oid>`` lines on stdin. The same rules as the server run against the remote's
state as this clone knows it (its remote-tracking refs), with the trust root taken from
this forge's committed ``.kavi/allowed_signers``. ``git push --no-verify`` skips it.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    from kavi.forge.context import Forge
    from kavi.forge.trust import trust_state
    from kavi.gitstore.hookcheck import HookChecker, Pinned, Update
    from kavi.gitstore.protected import Layout

    remote = argv[0] if argv else "origin"
    forge = Forge.open()
    repo = forge.repo
    from kavi.hooks.updates import UnreadableUpdate, read_updates

    try:
        lines = read_updates(sys.stdin.buffer.read(), fields=4, oids=(1, 3))
    except UnreadableUpdate as exc:
        sys.stderr.write(f"kavi: the server will reject this push: {exc}\n")
        return 1
    updates = [Update(remote_oid, local_oid, remote_ref) for _l, local_oid, remote_ref, remote_oid in lines]
    before = {}
    for name, target in repo.refs(f"refs/remotes/{remote}/").items():
        if target.startswith("ref: "):
            continue  # a dangling symbolic ref (e.g. origin/HEAD): no object to compare
        before["refs/heads/" + name[len(f"refs/remotes/{remote}/") :]] = target
    for u in updates:
        before[u.ref] = u.old
    state = trust_state(forge)
    layout = Layout.from_config(forge.committed_config)
    root = state.root
    pinned = Pinned(
        signers=root.signers if root is not None else "",
        layout=Layout(
            tuple(dict.fromkeys((forge.config.target_branch, *layout.protected))),
            layout.skills_dir,
            layout.tests_dir,
            layout.target_branch,
        ),
        forge_id=state.forge_id,
    )
    rejections = HookChecker(repo, pinned, updates, before=before).check()
    for r in rejections:
        sys.stderr.write(
            r.render(repo.subject).replace("kavi: REJECTED", "kavi: the server will reject") + "\n"
        )
    if rejections:
        sys.stderr.write(
            "kavi: push stopped before it reached the server (skip with `git push --no-verify`)\n"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
