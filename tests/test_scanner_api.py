"""The scanner's public API: findings, files and directories, policy knobs, fail-closed input."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kavi.policy import scanner
from kavi.policy.model import ScannerPolicy
from kavi.policy.scanner import MAX_BYTES, RULES, Finding, scan_file, scan_paths, scan_source

POLICY = ScannerPolicy()


def rules_of(source: str | bytes, policy: ScannerPolicy = POLICY) -> set[str]:
    return {f.rule for f in scan_source(source, "skill.py", policy)}


# -- Finding ---------------------------------------------------------------------


def test_finding_str_and_dict() -> None:
    finding = Finding("skills/x.py", 3, 5, "KS102", "forbidden-call: os.system")
    assert str(finding) == "skills/x.py:3:5: KS102 forbidden-call: os.system"
    assert finding.to_dict() == {
        "path": "skills/x.py",
        "line": 3,
        "col": 5,
        "rule": "KS102",
        "name": "forbidden-call",
        "message": "forbidden-call: os.system",
    }


def test_findings_locate_the_offending_expression() -> None:
    findings = scan_source("import os\n\nx = 1; os.system('id')\n", "a.py", POLICY)
    assert [(f.path, f.line, f.col, f.rule) for f in findings] == [("a.py", 3, 8, "KS102")]
    assert findings[0].message.startswith("forbidden-call: ")


def test_findings_are_sorted_and_deterministic() -> None:
    source = "import subprocess\neval('1')\nimport os\nos.system('x'); exec('y')\n"
    first = scan_source(source, "a.py", POLICY)
    assert first == scan_source(source, "a.py", POLICY)
    assert first == sorted(first, key=lambda f: (f.path, f.line, f.col, f.rule))
    assert [f.rule for f in first] == ["KS101", "KS201", "KS102", "KS201"]


def test_every_rule_is_documented_in_the_module_docstring() -> None:
    doc = scanner.__doc__ or ""
    for rule, slug in RULES.items():
        assert f"{rule}  {slug}" in doc, rule


# -- files and directories --------------------------------------------------------


def test_scan_paths_recurses_into_directories_sorted(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "clean.py").write_text("import json\nprint(json.dumps({}))\n")
    (tmp_path / "pkg" / "sub" / "b.py").write_text("import subprocess\n")
    (tmp_path / "pkg" / "a.py").write_text("x = eval('1')\n")
    (tmp_path / "pkg" / "notes.txt").write_text("import subprocess\n")
    (tmp_path / "pkg" / "sub" / "broken.py").write_text("def f(:\n")
    findings = scan_paths([tmp_path / "pkg"], POLICY)
    names = [(Path(f.path).relative_to(tmp_path).as_posix(), f.rule) for f in findings]
    assert names == [
        ("pkg/a.py", "KS201"),
        ("pkg/sub/b.py", "KS101"),
        ("pkg/sub/broken.py", "KS004"),
    ]


def test_scan_paths_mixes_files_and_directories_and_reports_missing(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.py").write_text("__import__('os')\n")
    single = tmp_path / "single.py"
    single.write_text("import socket\n")
    missing = tmp_path / "missing.py"
    findings = scan_paths([single, tmp_path / "d", missing, single], POLICY)
    by_path = {Path(f.path).name: f.rule for f in findings}
    assert by_path == {"single.py": "KS401", "x.py": "KS202", "missing.py": "KS008"}
    assert findings == sorted(findings, key=lambda f: (f.path, f.line, f.col, f.rule))


def test_scan_file_uses_display_path_and_fails_closed(tmp_path: Path) -> None:
    path = tmp_path / "skill.py"
    path.write_text("exec('x')\n")
    [finding] = scan_file(path, POLICY, display_path="skills/skill.py")
    assert finding.path == "skills/skill.py"
    assert scan_file(tmp_path, POLICY)[0].rule == "KS008"  # a directory is not a file
    big = tmp_path / "big.py"
    big.write_bytes(b"x = 1\n" * (MAX_BYTES // 6 + 10))
    assert [f.rule for f in scan_file(big, POLICY)] == ["KS001"]


def test_oversized_and_nul_sources_fail_closed() -> None:
    assert rules_of("x = 1\n" * (MAX_BYTES // 6 + 10)) == {"KS001"}
    assert rules_of(b"x = 1\n" * (MAX_BYTES // 6 + 10)) == {"KS001"}
    assert rules_of("x = 1\x00\n") == {"KS002"}
    assert rules_of(b"x = 1\x00\n") == {"KS002"}


def test_str_and_bytes_sources_agree() -> None:
    source = "import os\nos.popen('id')\nｅｖａｌ('1')\n"
    assert scan_source(source, "a.py", POLICY) == scan_source(source.encode(), "a.py", POLICY)


def test_bytes_are_decoded_like_python_does() -> None:
    hidden = b"# -*- coding: utf-7 -*-\nx = 1  #+AAo-import subprocess\n"
    assert rules_of(hidden) == {"KS005", "KS101"}  # utf-7 turns the comment into code
    assert rules_of(b"# coding: latin-1\nname = 'caf\xe9'\n") == set()
    assert rules_of(b"\xef\xbb\xbfname = 'x'\n") == set()
    assert rules_of(b"name = '\xff'\n") == {"KS003"}


def test_scanning_restores_interpreter_state() -> None:
    limit = sys.getrecursionlimit()
    assert gc.isenabled()
    scan_source("x = " + "(" * 500 + ")" * 500, "deep.py", POLICY)
    scan_source("import os\nos.system('x')\n", "a.py", POLICY)
    assert gc.isenabled()
    assert sys.getrecursionlimit() == limit


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    findings = scan_source(data, "fuzz.py", POLICY)
    assert all(isinstance(f, Finding) and f.rule in RULES for f in findings)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "import os\n",
                "x = os\n",
                "def f(a=os):\n    return a\n",
                "y = f()\n",
                "y.system('id')\n",
                "getattr(x, 'sys' + 'tem')\n",
                "class C:\n    z = eval\n",
                "for q in [x]:\n    q.path.join('a')\n",
                "open('vault_out/a.md', 'w')\n",
                "z = [x][0]\n",
                "lambda: exec\n",
                "del x\n",
                "global x\n",
            ]
        ),
        max_size=8,
    )
)
def test_generated_programs_never_raise(lines: list[str]) -> None:
    findings = scan_source("".join(lines), "gen.py", POLICY)
    assert all(f.rule in RULES and not f.rule.startswith("KS00") for f in findings)


# -- policy knobs --------------------------------------------------------------------


def test_network_policy_switch() -> None:
    source = "import socket\nimport urllib.request\n"
    assert rules_of(source) == {"KS401"}
    assert rules_of(source, ScannerPolicy(network=True)) == set()


def test_dynamic_exec_policy_switch() -> None:
    source = "eval('1')\nimport importlib\nimportlib.import_module('json')\n"
    assert rules_of(source) == {"KS201", "KS202"}
    assert rules_of(source, ScannerPolicy(forbid_dynamic_exec=False)) == set()


def test_forbidden_import_entries_match_module_submodules_and_names() -> None:
    policy = ScannerPolicy(forbidden_imports=["os.system", "xml.etree"], forbidden_calls=[])
    assert rules_of("import os\nos.getcwd()\n", policy) == set()
    assert rules_of("from os import system\n", policy) == {"KS101"}
    assert rules_of("import xml.etree.ElementTree\n", policy) == {"KS101"}
    assert rules_of("from xml.etree import ElementTree\n", policy) == {"KS101"}
    assert rules_of("import xml.dom\n", policy) == set()


def test_forbidden_calls_entries_follow_canonical_names() -> None:
    policy = ScannerPolicy(forbidden_imports=[], forbidden_calls=["shutil.rmtree"])
    assert rules_of("import shutil\nshutil.rmtree('vault_out/x')\n", policy) == {"KS102"}
    assert rules_of("from shutil import rmtree as r\n", policy) == {"KS102"}
    assert rules_of("import shutil\nf = getattr(shutil, 'rm' + 'tree')\n", policy) == {"KS102"}
    assert rules_of("import shutil\nshutil.copy(a, 'vault_out/b')\n", policy) == set()


def test_allowed_write_paths_drive_the_write_rule() -> None:
    source = "open('/srv/out/a.md', 'w')\nopen('notes/a.md', 'w')\n"
    findings = scan_source(source, "a.py", POLICY)
    assert [(f.line, f.rule) for f in findings] == [(1, "KS501"), (2, "KS501")]
    policy = ScannerPolicy(allowed_write_paths=["/srv/out/", "./notes"])
    assert scan_source(source, "a.py", policy) == []


def test_benign_policy_default_relaxations() -> None:
    assert rules_of("from urllib.parse import quote\nfrom http import HTTPStatus\n") == set()
    assert rules_of("from timeit import default_timer\n") == set()
    assert rules_of("import timeit\ntimeit.timeit('x')\n") == {"KS201"}


# -- import hygiene -------------------------------------------------------------------


def test_scanner_imports_fast_without_heavy_dependencies() -> None:
    code = (
        "import sys, kavi.policy.scanner as s\n"
        "heavy = {'pydantic', 'yaml', 'httpx', 'pygit2', 'typer'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("source", "rule"),
    [
        ("import os\nx = os\nx.system('id')\n", "KS102"),
        ("e = eval\ne('1')\n", "KS201"),
        ("import sys\nsys.modules['os'].system('id')\n", "KS302"),
        ("__builtins__.exec('x')\n", "KS303"),
        ("().__class__.__base__.__subclasses__()\n", "KS304"),
        ("import sys\nsys.addaudithook(print)\n", "KS305"),
        ("import os\ngetattr(os, input())('id')\n", "KS301"),
    ],
    ids=["alias", "builtin-alias", "sys-modules", "builtins", "subclasses", "audithook", "getattr"],
)
def test_rule_examples(source: str, rule: str) -> None:
    assert rule in rules_of(source)
