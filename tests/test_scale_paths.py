"""What keeps commands' cost following what they touch (issue 13, bench/bench_scale.py).

Each shortcut is checked for doing the same job as the long way: the registry's trusted
files are kept on disk by blob id and read back instead of parsing the YAML; the registry
on the target branch is known to agree with the ledger when it is byte for byte what the
latest promotion wrote; ``audit <skill>`` judges that skill's notes records only. Real
repositories, real signatures, the real CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import Verified
from support.forge import git, kavi, kavi_json

pytestmark = pytest.mark.slow


@pytest.fixture
def promoted(verified: Verified) -> Path:
    repo = verified.repo
    kavi_json("promote-skill", verified.proposal_id, "--yes", cwd=repo)
    return repo


def _registry_blob(repo: Path) -> str:
    return git("rev-parse", "HEAD:skills/registry.yaml", cwd=repo).strip()


def test_a_clone_keeps_the_registrys_trusted_files_by_blob_and_reads_them_back(promoted: Path) -> None:
    from kavi.forge.context import Forge
    from kavi.gitstore.govstate import REGISTRY_CACHE, GovReader
    from kavi.gitstore.protected import Layout

    repo = promoted
    (repo / "NOTES.md").write_text("an ordinary commit after the promotion\n")
    git("add", "NOTES.md", cwd=repo)
    git("commit", "-q", "-m", "notes", cwd=repo)
    run = ("run-skill", "write_note", "--json", '{"path": "a.md", "title": "A", "body": "B"}')
    assert kavi(*run, cwd=repo).code == 0  # judges the new commit against the registry
    kept = repo / ".git/kavi/cache" / REGISTRY_CACHE / f"{_registry_blob(repo)}.json"
    assert json.loads(kept.read_text()) == ["skills/write_note.py", "tests/test_skill_write_note.py"]

    forge = Forge.open(repo)
    tip = forge.repo.branch_tip("main")
    assert tip is not None
    fresh = GovReader(forge.repo, default=Layout(), cache_dir=kept.parent.parent)
    assert fresh.trusted_files(tip, Layout()) == ("skills/write_note.py", "tests/test_skill_write_note.py")
    assert not fresh._registries  # answered from the kept list: the YAML was not parsed
    kept.write_text("not json")  # a damaged entry is recomputed, never trusted
    again = GovReader(forge.repo, default=Layout(), cache_dir=kept.parent.parent)
    files = {"skills/write_note.py", "tests/test_skill_write_note.py"}
    assert set(again.trusted_files(tip, Layout())) == files


def test_a_registry_that_is_not_the_last_written_is_still_compared_entry_by_entry(promoted: Path) -> None:
    repo = promoted
    assert kavi_json("audit", "write_note", cwd=repo)["ok"] is True
    registry = repo / "skills/registry.yaml"
    registry.write_text(registry.read_text().replace("description: ", "description: edited "))
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "edit the registry", cwd=repo)
    report = kavi("audit", "write_note", "--format", "json", cwd=repo)
    assert report.code == 1 and report.json["ok"] is False, report.output


def test_audit_of_one_skill_judges_its_own_notes_records(promoted: Path) -> None:
    repo = promoted
    trust = kavi_json("audit", "write_note", cwd=repo)["trust"]["checks"]
    (notes,) = [c for c in trust if "refs/notes/kavi" in c["what"]]
    assert notes["ok"] and notes["what"].startswith("refs/notes/kavi: 1 signed record(s) of write_note")


def _entry_yaml(name: str, description: str = "d") -> str:
    fields = {
        "name": name,
        "version": "1",
        "description": description,
        "module": f"skills.{name}",
        "class_name": "X",
        "file": f"skills/{name}.py",
        "test_file": f"tests/test_skill_{name}.py",
        "input_model": "m.I",
        "output_model": "m.O",
        "side_effect_class": "READ_ONLY",
        "required_secrets": "[]",
        "io_schema": "{input: {a: str}, output: {b: str}}",
        "sha256": "0" * 64,
        "blake3": "0" * 64,
        "blob": "0" * 40,
        "test_blob": "0" * 40,
        "tag": f"kavi/{name}/v1",
        "proposal_id": "p",
        "promotion_id": "q",
    }
    return f"  {name}:\n" + "".join(f"    {k}: {v}\n" for k, v in fields.items())


def _both(text: str) -> tuple[object, object]:
    """(block by block, whole) — each an entries dict or the error's message."""
    from kavi.errors import TrustError
    from kavi.forge.registry import parse_registry, registry_entries

    out: list[object] = []
    for way in ("blocks", "whole"):
        try:
            if way == "blocks":
                out.append(registry_entries(text, source="r", blocks={}))
            else:
                out.append({n: e.model_dump() for n, e in parse_registry(text, source="r").skills.items()})
        except TrustError as exc:
            out.append(exc.message)
    return out[0], out[1]


@pytest.mark.parametrize(
    "text",
    [
        # Kavi's own layout
        "# header\nversion: 1\nskills:\n" + _entry_yaml("a") + _entry_yaml("b"),
        # an alias to an anchor in another block: cannot stand alone, parsed whole
        "version: 1\nskills:\n"
        + _entry_yaml("a").replace("description: d", "description: &x shared")
        + _entry_yaml("b").replace("description: d", "description: *x"),
        # a name listed twice: parsed whole (YAML keeps the last)
        "version: 1\nskills:\n" + _entry_yaml("a") + _entry_yaml("a", "second"),
        # another layout: a blank line, a comment at the skills' level, a flow entry
        "version: 1\nskills:\n" + _entry_yaml("a") + "\n" + _entry_yaml("b"),
        "version: 1\nskills:\n  # note\n" + _entry_yaml("a"),
        "version: 1\nskills: {}\n",
        # an invalid entry and a value that is not a mapping: refused either way
        "version: 1\nskills:\n" + _entry_yaml("a").replace("    version: 1\n", ""),
        "version: 1\nskills:\n  a:\n",
        # a block whose name line says one thing and whose mapping another
        "version: 1\nskills:\n" + _entry_yaml("a").replace("    name: a", "    name: b"),
    ],
)
def test_reading_the_registry_block_by_block_gives_what_parsing_it_whole_gives(text: str) -> None:
    blocks, whole = _both(text)
    assert blocks == whole
