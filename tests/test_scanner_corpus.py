"""The policy scanner against its corpus of evasions and benign look-alikes.

Samples live in ``tests/scanner_corpus/<category>/<name>.py.txt`` (stored as text so
that linters and formatters leave deliberately hostile or broken code alone). Each
declares its expectation in a comment: ``# expect: KS102`` (any of ``KS101|KS102``)
for malicious samples, ``# expect: clean`` for benign ones. A malicious sample passes
when at least one finding carries an expected rule; a benign one when it has none.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from kavi.policy.model import ScannerPolicy
from kavi.policy.scanner import RULES, Finding, scan_source

CORPUS = Path(__file__).parent / "scanner_corpus"
POLICY = ScannerPolicy()
_EXPECT = re.compile(rb"# expect: ([A-Za-z0-9|]+)")

MALICIOUS_CATEGORIES = (
    "direct",
    "aliasing",
    "indirection",
    "builtins",
    "stdlib_escape",
    "unicode_encoding",
    "import_time",
    "network",
    "writes",
    "secrets",
    "tempfile_chdir",
    "fail_closed",
)


@dataclass(frozen=True)
class Sample:
    category: str
    name: str
    path: Path
    expect: frozenset[str]  # empty: benign

    @property
    def ident(self) -> str:
        return f"{self.category}/{self.name}"


def _load() -> list[Sample]:
    samples = []
    for path in sorted(CORPUS.glob("*/*.py.txt")):
        match = _EXPECT.search(path.read_bytes())
        if match is None:
            raise AssertionError(f"{path}: missing '# expect:' header")
        raw = match.group(1).decode()
        expect = frozenset() if raw == "clean" else frozenset(raw.split("|"))
        samples.append(Sample(path.parent.name, path.name.removesuffix(".py.txt"), path, expect))
    return samples


SAMPLES = _load()
MALICIOUS = [s for s in SAMPLES if s.expect]
BENIGN = [s for s in SAMPLES if not s.expect]


@functools.cache
def _scan(sample: Sample) -> tuple[Finding, ...]:
    return tuple(scan_source(sample.path.read_bytes(), sample.ident, POLICY))


def _show(findings: tuple[Finding, ...]) -> str:
    return "\n".join(str(f) for f in findings) or "(no findings)"


def test_corpus_is_large_and_covers_every_category() -> None:
    per_category = Counter(s.category for s in MALICIOUS)
    assert set(per_category) == set(MALICIOUS_CATEGORIES)
    assert all(n >= 8 for n in per_category.values()), per_category
    assert len(MALICIOUS) >= 150
    assert len(BENIGN) >= 80
    assert {s.category for s in BENIGN} == {"benign"}


def test_expectations_name_known_rules() -> None:
    for sample in MALICIOUS:
        assert sample.expect <= set(RULES), sample.ident


@pytest.mark.parametrize("sample", MALICIOUS, ids=lambda s: s.ident)
def test_malicious_sample_is_flagged_with_expected_rule(sample: Sample) -> None:
    findings = _scan(sample)
    assert findings, f"{sample.ident} was not flagged"
    rules = {f.rule for f in findings}
    assert rules & sample.expect, (
        f"{sample.ident}: expected one of {sorted(sample.expect)}, got:\n{_show(findings)}"
    )


@pytest.mark.parametrize("sample", BENIGN, ids=lambda s: s.ident)
def test_benign_sample_is_clean(sample: Sample) -> None:
    findings = _scan(sample)
    assert not findings, f"{sample.ident} is benign but was flagged:\n{_show(findings)}"


def test_recall_and_precision_at_least_95_percent() -> None:
    true_pos = sum(1 for s in MALICIOUS if _scan(s))
    false_neg = len(MALICIOUS) - true_pos
    false_pos = sum(1 for s in BENIGN if _scan(s))
    recall = true_pos / (true_pos + false_neg)
    precision = true_pos / (true_pos + false_pos)
    print(
        f"\nscanner corpus: {len(MALICIOUS)} malicious, {len(BENIGN)} benign; "
        f"recall {recall:.3f}, precision {precision:.3f}"
    )
    assert recall >= 0.95
    assert precision >= 0.95
