"""``doctor``: the ledger file, its journal, its mirror and its artifacts.

* the file: missing (deleted — and were its events mirrored?), empty, foreign,
  malformed, failing ``PRAGMA integrity_check``, or a stray write-ahead log without its
  database. ``--repair`` sets a damaged file aside and rebuilds the ledger from
  ``refs/kavi/ledger`` plus what can be read of its unmirrored events; it rebuilds a
  deleted one only if nothing would be lost (otherwise it says which events, and how
  to accept the loss);
* the event journal's hash chain;
* the ledger against its mirror, in either direction (:mod:`kavi.forge.sync`): the
  side that is signed and ahead wins — events on the mirror the ledger has not recorded
  are adopted or imported (signatures checked), a mirror ref behind the ledger's
  record is fast-forwarded, lost mirror commits are forgotten and mirrored again;
  a divergence is reported, never repaired;
* vault artifacts missing or altered (restored from the mirror).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kavi.errors import KaviError, LedgerDamagedError
from kavi.forge.context import Forge

if TYPE_CHECKING:
    from kavi.forge.doctor import DoctorReport


def check_ledger_file(forge: Forge, report: DoctorReport, repair: bool) -> bool:
    """Whether the ledger can be used by the other checks (after repairs)."""
    from kavi.forge import ledger_rescue
    from kavi.forge.doctor import Finding
    from kavi.gitstore.mirror import LEDGER_REF

    report.checked.append("ledger file")
    path = forge.location.ledger_path
    if not path.exists():
        missing = ledger_rescue.missing_state(forge)
        strays = [
            p for p in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")) if p.exists()
        ]
        has_mirror = forge.repo.ref_target(LEDGER_REF) is not None
        if missing is None and not strays:
            return _create_or_import(forge, report, repair, has_mirror)
        if missing is not None and not missing.covered:
            report.findings.append(
                Finding(
                    "ledger file",
                    f"{path} is gone, and events #{missing.mirrored + 1}…#{missing.marked} were never "
                    f"mirrored (refs/kavi/ledger holds {missing.mirrored})"
                    + (f"; its write-ahead log {strays[0].name} is still there" if strays else ""),
                    f"restore {path} from a backup; or accept the loss: "
                    "`git kavi ledger import --accept-loss`",
                )
            )
            return False
        what = "was deleted, but refs/kavi/ledger holds every event it had" if missing else "does not exist"
        finding = Finding(
            "ledger file",
            f"{path} {what}"
            + (f"; a stray write-ahead log is left ({', '.join(p.name for p in strays)})" if strays else ""),
            "set the stray log aside and rebuild the ledger from refs/kavi/ledger",
        )
        report.findings.append(finding)
        if repair:
            finding.repaired = _rebuild(forge, finding)
        return finding.repaired
    from kavi.forge.ledger_rescue import damage

    problem = damage(forge)
    if problem is None:
        return True
    finding = Finding(
        "ledger file",
        f"{path}: {problem}",
        "set it aside (kept as ledger.db.damaged-…), rebuild from refs/kavi/ledger and recover what can "
        "be read of its unmirrored events",
    )
    report.findings.append(finding)
    if repair:
        finding.repaired = _rebuild(forge, finding)
    return finding.repaired


def _create_or_import(forge: Forge, report: DoctorReport, repair: bool, has_mirror: bool) -> bool:
    from kavi.forge.doctor import Finding
    from kavi.ledger.autoimport import ensure_ledger

    finding = Finding(
        "ledger file",
        f"this clone has no ledger yet ({forge.location.ledger_path})",
        "rebuild it from refs/kavi/ledger" if has_mirror else "create an empty one",
    )
    report.findings.append(finding)
    if repair:
        ensure_ledger(forge)
        finding.repaired = True
    return finding.repaired


def _rebuild(forge: Forge, finding: object) -> bool:
    from kavi.forge.importer import import_ledger
    from kavi.gitstore.mirror import LEDGER_REF
    from kavi.ledger.store import Ledger

    forge.close()
    if forge.repo.ref_target(LEDGER_REF) is None and not forge.location.ledger_path.exists():
        from kavi.forge.ledger_rescue import move_stray_wal

        move_stray_wal(forge.location.ledger_path)
        Ledger.open(forge.location.ledger_path, create=True, mark=forge.location.ledger_mark).close()
        return True
    try:
        result = import_ledger(forge)
    except KaviError as exc:
        setattr(finding, "repair", f"{getattr(finding, 'repair', '')} — failed: {exc.message}")  # noqa: B010
        return False
    notes = []
    if result.get("set_aside"):
        notes.append(f"damaged file kept as {result['set_aside']}")
    if "recovered_unmirrored" in result:
        notes.append(f"{result['recovered_unmirrored']} unmirrored event(s) recovered from it")
    if result.get("stray_wal_set_aside"):
        notes.append("stray log kept as " + ", ".join(result["stray_wal_set_aside"]))
    notes.append(f"{result['events']} event(s) in the rebuilt ledger")
    setattr(finding, "repair", f"{getattr(finding, 'repair', '')} ({'; '.join(notes)})")  # noqa: B010
    return True


def check_ledger(forge: Forge, report: DoctorReport, repair: bool) -> None:
    from kavi.forge.doctor import Finding

    report.checked.append("ledger journal, mirror and vault")
    ledger = forge.ledger
    for problem in ledger.verify_chain():
        report.findings.append(
            Finding("ledger journal", problem, "restore the ledger: git kavi ledger import")
        )
    _check_mirror(forge, report, repair)
    from kavi.forge.checks import SYNC_HINT, unmirrored_warning

    pending = unmirrored_warning(ledger)
    if pending:
        report.findings.append(Finding("ledger mirror", pending, SYNC_HINT, warning=True))
    _check_artifacts(forge, report, repair)


def _check_mirror(forge: Forge, report: DoctorReport, repair: bool) -> None:
    from kavi.forge.doctor import Finding
    from kavi.forge.sync import mirror_state, reconcile
    from kavi.gitstore.mirror import LEDGER_REF

    ms = mirror_state(forge)
    if ms.problem:
        report.findings.append(
            Finding(
                "ledger mirror",
                ms.problem,
                "restore the side you trust (a backup of the ledger, or the mirror from a trusted remote); "
                "Kavi repairs neither automatically",
            )
        )
        return
    if ms.foreign:
        finding = Finding(
            "ledger mirror",
            f"{LEDGER_REF} holds {ms.foreign} event(s) after #{ms.known_seq} this ledger does not have "
            "(the mirror is ahead)",
            "import them (every signature checked): git kavi ledger import",
        )
        report.findings.append(finding)
        if repair:
            from kavi.forge.importer import import_ledger

            try:
                import_ledger(forge)
                finding.repaired = True
            except KaviError as exc:
                finding.repair += f" — failed: {exc.message}"
        return
    parts = []
    if ms.adoptable:
        parts.append(
            f"{len(ms.adoptable)} event(s) are on {LEDGER_REF} but not recorded as mirrored "
            "(mirroring was interrupted)"
        )
    if ms.behind:
        parts.append(
            f"{LEDGER_REF} is at {(ms.tip or 'nothing')[:12]}, behind event #{ms.known_seq} which the "
            f"ledger mirrored as {(ms.known or '')[:12]}"
        )
    if ms.lost_after is not None:
        parts.append(f"the mirror commits recorded after event #{ms.lost_after} no longer exist")
    if not parts:
        return
    finding = Finding(
        "ledger mirror",
        "; ".join(parts),
        "record what the mirror already has, move the ref to what the ledger recorded, "
        "mirror again what was lost (git kavi ledger sync)",
    )
    report.findings.append(finding)
    if repair:
        try:
            reconcile(forge, ms)
            finding.repaired = True
        except KaviError as exc:
            finding.repair += f" — failed: {exc.message}"


def _check_artifacts(forge: Forge, report: DoctorReport, repair: bool) -> None:
    from kavi.artifacts.vault import atomic_write
    from kavi.forge.checks import artifact_state
    from kavi.forge.doctor import Finding
    from kavi.gitstore.mirror import LEDGER_REF, read_artifact

    tip = forge.repo.ref_target(LEDGER_REF)
    for artifact in forge.ledger.artifacts():
        state = artifact_state(forge, artifact, tip)
        if state.ok:
            continue
        finding = Finding(
            "artifact",
            f"{artifact.path}: {state.detail}",
            "restore it from refs/kavi/ledger" if state.restorable else "",
        )
        report.findings.append(finding)
        if repair and tip is not None and state.restorable:
            data = read_artifact(forge.repo, tip, artifact.blake3)
            if data is not None:
                atomic_write(forge.workdir / artifact.path, data)
                finding.repaired = True


def integrity_problems(forge: Forge) -> list[str]:
    """For audit: the ledger file's own integrity (empty list when sound)."""
    try:
        return forge.ledger.integrity()
    except LedgerDamagedError as exc:
        return [exc.message]
