"""Mirroring one ledger event onto refs/kavi/ledger with 10,000 events already mirrored vs. 10.

Each mirror commit's tree carries every artifact recorded so far (2-character fan-out),
so the cost of one more event must not grow with the ledger. Both mirrors are built
in the same run (their existing commits carry placeholder signatures, to keep the setup
short); then one artifact event is mirrored — and really signed with ssh-keygen — onto
each, several times, and the medians compared. Goal: ratio ≤ 1.5.

    python bench/bench_mirror.py [--events 10000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from kavi.gitstore.mirror import mirror_events
from kavi.gitstore.repo import GitRepo
from kavi.hashing import blake3_hex
from kavi.ledger.models import Artifact, ArtifactKind, Event
from kavi.ledger.store import event_hash
from kavi.sshsig import signer_from_key


def make_event(seq: int, prev: str) -> tuple[Event, bytes]:
    data = f"# artifact {seq}\n\n{uuid.uuid4()}\n".encode()
    artifact = Artifact(
        id=str(uuid.uuid4()),
        kind=ArtifactKind.NOTE,
        path=f"vault_out/kavi/note/{seq}.md",
        sha256="0" * 64,
        blake3=blake3_hex(data),
        size=len(data),
        related_id="bench",
        created_at="2026-01-01T00:00:00.000000Z",
    )
    fields = {
        "seq": seq,
        "id": str(uuid.uuid4()),
        "kind": "artifact.recorded",
        "subject_id": artifact.id,
        "payload": artifact.model_dump(mode="json"),
        "actor": "bench",
        "created_at": "2026-01-01T00:00:00.000000Z",
        "prev_hash": prev,
    }
    fields["hash"] = event_hash(fields)
    return Event.model_validate(fields), data


class PlaceholderSigner:
    """Builds the pre-existing history fast; the measured events are signed for real."""

    principal = "bench@example.com"

    def sign(self, payload: bytes) -> str:
        return "-----BEGIN SSH SIGNATURE-----\nplaceholder\n-----END SSH SIGNATURE-----\n"


def build(repo: GitRepo, count: int, signer: object, events: list[tuple[Event, bytes]]) -> None:
    blobs = {e.id: d for e, d in events}
    mirror_events(
        repo,
        [e for e, _ in events[:count]],
        artifact_bytes=lambda e: (str(e.payload["blake3"]), blobs[e.id]),
        signer=signer,  # type: ignore[arg-type]
        governance="0" * 40,
        on_commits=lambda made: None,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="kavi-bench-mirror-"))
    home = root / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = Bench\n\temail = bench@example.com\n")
    os.environ["HOME"] = str(home)
    try:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / "key")], check=True)
        signer = signer_from_key(str(root / "key"), "bench@example.com")
        prev = ""
        events = []
        for seq in range(1, args.events + 1 + args.rounds):
            ev, data = make_event(seq, prev)
            events.append((ev, data))
            prev = ev.hash
        repos = {}
        for n in (10, args.events):
            path = root / f"r{n}"
            subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
            repo = GitRepo.open(path)
            start = time.perf_counter()
            build(repo, n, PlaceholderSigner(), events)
            print(f"setup: mirrored {n} events in {time.perf_counter() - start:.1f}s", file=sys.stderr)
            repos[n] = repo
        timings: dict[int, list[float]] = {10: [], args.events: []}
        for r in range(args.rounds):
            for n, repo in repos.items():
                ev, data = events[n + r]
                # mirror event n+r+1 on top of a ledger of n+r events (prev_hash chain aside,
                # the work per event is the same)
                start = time.perf_counter()
                mirror_events(
                    repo,
                    [ev],
                    artifact_bytes=lambda e, d=data: (str(e.payload["blake3"]), d),
                    signer=signer,
                    governance="0" * 40,
                    on_commits=lambda made: None,
                )
                timings[n].append(time.perf_counter() - start)
        small, large = statistics.median(timings[10]), statistics.median(timings[args.events])
        print(f"mirror one event onto 10 events        : {small * 1000:7.2f} ms")
        print(f"mirror one event onto {args.events} events : {large * 1000:7.2f} ms")
        print(f"ratio = {large / small:.2f}x   (goal <= 1.5x, median of {args.rounds})")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
