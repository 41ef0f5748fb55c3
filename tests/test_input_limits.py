"""Input from outside is bounded: size, nesting, encoding; nothing hangs or exhausts memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Verified
from kavi.errors import ValidationError
from kavi.inputs import MAX_DEPTH, MAX_INPUT_BYTES, parse_json
from support.forge import kavi, kavi_json, propose_write_note


@pytest.fixture
def trusted(verified: Verified) -> Path:
    kavi_json("promote-skill", verified.proposal_id, "--yes", cwd=verified.repo)
    return verified.repo


GOOD = {"path": "a.md", "title": "A", "body": "B"}


def _run_file(repo: Path, path: Path | str) -> tuple[int, dict[str, object]]:
    """run-skill --input-file in a child process (a hang would fail the timeout, not the suite)."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "kavi",
            "run-skill",
            "write_note",
            "--input-file",
            str(path),
            "--format",
            "json",
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return proc.returncode, json.loads(proc.stdout)


def _runs(repo: Path) -> int:
    return len(kavi_json("show", "write_note", cwd=repo)["artifacts"])


@pytest.mark.slow
def test_dev_zero_and_oversized_files_are_refused_quickly(trusted: Path, tmp_path: Path) -> None:
    before = _runs(trusted)
    code, out = _run_file(trusted, "/dev/zero")
    assert code == 2 and out["code"] == "KAVI-INVALID" and "larger than 1024 KiB" in str(out["message"])
    big = tmp_path / "big.json"
    big.write_text(json.dumps({**GOOD, "body": "x" * MAX_INPUT_BYTES}))
    code, out = _run_file(trusted, big)
    assert code == 2 and "larger than" in str(out["message"])
    assert _runs(trusted) == before  # refused before anything ran or was recorded


@pytest.mark.slow
def test_a_fifo_without_writer_and_a_directory_do_not_hang(trusted: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    code, out = _run_file(trusted, fifo)
    assert code == 2 and "not valid JSON" in str(out["message"])
    code, out = _run_file(trusted, tmp_path)
    assert code == 2 and "is a directory" in str(out["message"])


def test_encodings(trusted: Path, tmp_path: Path) -> None:
    latin = tmp_path / "latin.json"
    latin.write_bytes(json.dumps({**GOOD, "body": "Grüße"}, ensure_ascii=False).encode("latin-1"))
    res = kavi("run-skill", "write_note", "--input-file", str(latin), "--format", "json", cwd=trusted)
    assert res.code == 2 and "not valid UTF-8 (byte" in res.json["message"]
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode())
    assert kavi("run-skill", "write_note", "--input-file", str(bom), cwd=trusted).code == 0
    res = kavi("run-skill", "write_note", "--json", '{"path": "a.md", "title": "\\ud800", "body": "b"}',
               "--format", "json", cwd=trusted)  # fmt: skip
    assert res.code == 2 and "lone surrogate (U+D800)" in res.json["message"]
    pair = '{"path": "a.md", "title": "\\ud83d\\ude00", "body": "b"}'  # an escaped pair is one character
    assert kavi("run-skill", "write_note", "--json", pair, cwd=trusted).code == 0


@pytest.mark.slow
def test_arguments_that_are_not_utf8_are_refused(trusted: Path) -> None:
    proc = subprocess.run(
        [sys.executable.encode(), b"-m", b"kavi", b"run-skill", b"write_note", b"--json",
         b'{"path": "a.md", "title": "\xff", "body": "b"}', b"--format", b"json"],
        cwd=trusted, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    out = json.loads(proc.stdout)
    assert proc.returncode == 2 and out["message"] == "argument 4 is not valid UTF-8 (byte 0xff)", out
    proc = subprocess.run(
        [sys.executable.encode(), b"-m", b"kavi", b"propose-skill", b"--name", b"x", b"--desc", b"caf\xe9",
         b"--side-effect", b"READ_ONLY", b"--io-schema-json", b'{"input": {}, "output": {"x": "str"}}'],
        cwd=trusted, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and b"not valid UTF-8" in proc.stderr


def test_nesting_numbers_and_constants(trusted: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    res = kavi("run-skill", "write_note", "--json", deep, "--format", "json", cwd=trusted)
    assert res.code == 2 and "nested more than" in res.json["message"]
    nested: object = "x"
    for _ in range(MAX_DEPTH + 1):
        nested = {"a": nested}
    res = kavi("run-skill", "write_note", "--json", json.dumps({**GOOD, "extra": nested}), "--format", "json",
               cwd=trusted)  # fmt: skip
    assert res.code == 2 and f"nested more than {MAX_DEPTH}" in res.json["message"]
    res = kavi("run-skill", "write_note", "--json", '{"path": NaN}', "--format", "json", cwd=trusted)
    assert res.code == 2 and "NaN" in res.json["message"]
    res = kavi(
        "run-skill", "write_note", "--json", '{"n": ' + "9" * 5000 + "}", "--format", "json", cwd=trusted
    )
    assert res.code == 2 and res.json["code"] == "KAVI-INVALID"


def test_stdin_is_bounded_too(trusted: Path) -> None:
    res = kavi("run-skill", "write_note", "--input-file", "-", "--format", "json", cwd=trusted,
               stdin="[" * (MAX_INPUT_BYTES + 10))  # fmt: skip
    assert res.code == 2 and "larger than" in res.json["message"]
    ok = kavi("run-skill", "write_note", "--input-file", "-", cwd=trusted, stdin=json.dumps(GOOD))
    assert ok.code == 0, ok.output


def test_the_io_schema_is_bounded(verified: Verified) -> None:
    res = kavi("propose-skill", "--name", "deep", "--desc", "d", "--side-effect", "READ_ONLY",
               "--io-schema-json", '{"input": {"a": {"b": {"c": "str"}}}, "output": {"x": "str"}}',
               "--format", "json", cwd=verified.repo)  # fmt: skip
    assert res.code == 2
    assert propose_write_note(verified.repo, "fine_name")


def test_parse_json_directly() -> None:
    assert parse_json('{"a": [1, {"b": "c"}]}', source="t") == {"a": [1, {"b": "c"}]}
    for bad in ('{"a": Infinity}', '{"a": "\\udc80"}', '{"\\ud800": 1}', "[" * 40 + "]" * 40):
        with pytest.raises(ValidationError):
            parse_json(bad, source="t")
