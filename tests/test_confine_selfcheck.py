"""Regression tests for holes a self-review of the boundary found (and closed).

* a root of the runtime policy reached through a symlink a skill could have planted in
  the vault is refused (another run's read root would otherwise lead to ``~/.ssh``);
* a reply crafted to crash Kavi's parser (nested 200,000 deep) fails the run cleanly;
* the directories on the way to a vault below ``/tmp`` are read-only skeletons, not part
  of the skill's private ``/tmp`` (see ``test_confine_boundary``);
* ``/proc`` is read-only in the jail: as host root a skill could otherwise write global
  sysctls (``core_pattern``) or ``/proc/sysrq-trigger`` (see ``test_confine_boundary``);
* the pytest plugin passed on the guard's read roots and protected paths (see
  ``test_confine_fallback``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from kavi.confine import jail
from support.confined import Box, probe
from support.forge import git, kavi

pytestmark = pytest.mark.skipif(not jail.available(), reason="no user namespaces here")


@pytest.mark.slow
def test_a_planted_symlink_never_becomes_a_root(hostile: Path, isolated_env: Path) -> None:
    path = hostile / ".kavi" / "policy.yaml"
    policy = yaml.safe_load(path.read_text())
    policy["runtime"]["allowed_read_paths"] = ["vault_out/", "vault_out/shared/"]
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    git("commit", "-q", "-S", "-am", "policy: a shared read root", cwd=hostile)
    (hostile / "vault_out").mkdir(exist_ok=True)
    (hostile / "vault_out" / "shared").symlink_to(isolated_env / ".ssh")  # what a skill could leave
    res = kavi(
        "run-skill",
        "read_file",
        "--json",
        json.dumps({"path": "shared/id_ed25519"}),
        "--format",
        "json",
        cwd=hostile,
    )
    assert res.code == 1 and res.json["code"] == "KAVI-POLICY", res.output
    assert "symbolic link" in res.json["message"] and "theusersprivatekey" not in res.output


def test_a_reply_bomb_fails_the_run_cleanly(tmp_path: Path) -> None:
    box = Box(tmp_path).make()
    result = probe(box, "reply_bomb")
    assert result.reply is None and not result.timed_out


@pytest.mark.slow
def test_a_skills_error_cannot_write_markdown_into_its_record(hostile: Path) -> None:
    path = "x```\n\n# Injected heading\n\n```"
    res = kavi(
        "run-skill", "read_file", "--json", json.dumps({"path": path}), "--format", "json", cwd=hostile
    )
    assert res.code == 1, res.output
    record = sorted((hostile / "vault_out" / "kavi" / "run_record").glob("*.md"))[-1].read_text()
    body = record.split("## Error", 1)[1]
    fence = body.strip().splitlines()[0]
    assert fence == "````text" and body.strip().endswith("````"), body
    assert "\n# Injected heading" not in body.split(fence, 1)[0]
