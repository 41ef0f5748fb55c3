"""Held-out evaluation of the static policy scanner.

``tests/scanner_heldout/`` holds an independent corpus, written without looking at the
scanner's own corpus or tests:

* ``evasions/*.py.txt`` — code a skill must not contain (processes, dynamic code,
  network, writes outside the allowed paths, builtins/introspection escape hatches,
  guard tampering, Unicode/encoding tricks, import-time hiding, unparsable input);
* ``benign/*.py.txt`` — ordinary skill and test code that only *looks* dangerous.

A file is flagged when the default policy yields at least one finding. The test reports
recall (flagged evasions / evasions) and precision (flagged evasions / all flagged
files) and requires both to be at least 0.95; the assertion message lists every missed
evasion and every false positive with the scanner's findings.

Each sample's description is the text after ``heldout:`` in its first lines; the file
name's prefix up to the first ``_`` is its category.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from kavi.policy.model import ScannerPolicy
from kavi.policy.scanner import Finding, scan_source

CORPUS = Path(__file__).parent / "scanner_heldout"
EVASIONS = CORPUS / "evasions"
BENIGN = CORPUS / "benign"
SUFFIX = ".py.txt"
THRESHOLD = 0.95
MIN_EVASIONS = 120
MIN_BENIGN = 80

_DESC = re.compile(r"heldout:\s*(.+)")


@dataclass(frozen=True)
class Sample:
    path: Path
    name: str
    category: str
    description: str
    source: bytes


def _description(data: bytes) -> str:
    head = data[:2000]
    texts = [head.decode("utf-8", "replace")]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        texts.insert(0, head.decode("utf-16", "replace"))
    for text in texts:
        m = _DESC.search(text)
        if m:
            return m.group(1).strip()
    return "(no description)"


def _load(directory: Path) -> list[Sample]:
    samples = []
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        data = path.read_bytes()
        name = path.name[: -len(SUFFIX)]
        samples.append(Sample(path, name, name.split("_", 1)[0], _description(data), data))
    return samples


def _scan(sample: Sample) -> list[Finding]:
    # The display path ends in .py, as a generated skill file would.
    return scan_source(sample.source, f"{sample.name}.py", ScannerPolicy())


def _fmt_findings(findings: list[Finding], limit: int = 6) -> str:
    lines = [f"        {f.line}:{f.col} {f.rule} {f.message}" for f in findings[:limit]]
    if len(findings) > limit:
        lines.append(f"        … {len(findings) - limit} more")
    return "\n".join(lines)


def _by_category(samples: list[Sample], hits: set[str]) -> str:
    total = Counter(s.category for s in samples)
    ok = Counter(s.category for s in samples if s.name in hits)
    return ", ".join(f"{c} {ok[c]}/{n}" for c, n in sorted(total.items()))


def test_heldout_corpus_is_large_enough() -> None:
    evasions, benign = _load(EVASIONS), _load(BENIGN)
    assert len(evasions) >= MIN_EVASIONS, f"only {len(evasions)} evasion samples"
    assert len(benign) >= MIN_BENIGN, f"only {len(benign)} benign samples"
    names = [s.name for s in evasions + benign]
    assert len(names) == len(set(names)), "sample names must be unique across evasions/ and benign/"


def test_scanner_heldout_recall_and_precision() -> None:
    evasions, benign = _load(EVASIONS), _load(BENIGN)
    if not evasions or not benign:
        pytest.fail(f"held-out corpus missing under {CORPUS}")

    results = {s.name: _scan(s) for s in evasions + benign}
    caught = {s.name for s in evasions if results[s.name]}
    false_pos = {s.name for s in benign if results[s.name]}
    missed = [s for s in evasions if s.name not in caught]
    fps = [s for s in benign if s.name in false_pos]

    tp, fp = len(caught), len(fps)
    recall = tp / len(evasions)
    precision = tp / (tp + fp) if tp + fp else 0.0
    clean = {s.name for s in benign} - false_pos

    report = [
        f"held-out corpus: {len(evasions)} evasions, {len(benign)} benign",
        f"recall    = {tp}/{len(evasions)} = {recall:.4f}",
        f"precision = {tp}/{tp + fp} = {precision:.4f}"
        f"  (false-positive rate {fp}/{len(benign)} = {fp / len(benign):.4f})",
        f"evasions flagged by category: {_by_category(evasions, caught)}",
        f"benign clean by category:     {_by_category(benign, clean)}",
        f"missed evasions ({len(missed)}):",
    ]
    report += [f"  - {s.name}: {s.description}" for s in missed] or ["  (none)"]
    report.append(f"false positives ({len(fps)}):")
    for s in fps:
        report.append(f"  - {s.name}: {s.description}")
        report.append(_fmt_findings(results[s.name]))
    if not fps:
        report.append("  (none)")
    text = "\n".join(report)
    print(text)

    assert recall >= THRESHOLD and precision >= THRESHOLD, text
