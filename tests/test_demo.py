"""`kavi demo`: the whole pipeline, including one failed attempt, its research note and
the retry that passes."""

from __future__ import annotations

from pathlib import Path

import pytest

from kavi.forge.demo import run_demo

pytestmark = pytest.mark.slow


def test_the_demo_shows_a_failed_attempt_its_research_and_the_retry(tmp_path: Path) -> None:
    lines: list[str] = []
    result = run_demo(keep=False, echo=lines.append, workdir=tmp_path)
    text = "\n".join(lines)
    failed = text.index(": FAILED")
    research = text.index("$ git kavi research-skill")
    retry = text.index("$ git kavi build-skill", research)
    passed = text.index(": PASSED")
    assert failed < research < retry < passed
    assert "note: | skills/write_note.py:10 | mypy | no-untyped-def |" in text
    assert "(attempt 2, files): SUCCEEDED" in text and "Promoted write_note v1: TRUSTED" in text
    assert "error[KAVI-TRUST]" in text  # the tampered file is refused
    assert [s["exit"] for s in result["steps"]].count(1) == 2  # the failed verify and the refused run
    assert not Path(result["root"]).exists()
