"""Small pieces the build relies on: showing agent-chosen text safely, and redacting secrets."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from kavi.confine.withhold import signing_key_files, withheld_paths
from kavi.secrets import REDACTED, redact, redact_bytes, secret_forms
from kavi.textsafe import is_git_dir_name, printable

SECRET = "tok-4f9a1c2e-live-credential"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain/path.py", "plain/path.py"),
        ("evil\x1b]0;owned\x07.txt", "evil\\x1b]0;owned\\x07.txt"),
        ("two\nlines", "two\\x0alines"),
        ("csi\x9b31m", "csi\\x9b31m"),
        ("bidi\u202eexe.py", "bidi\\u202eexe.py"),
        ("del\x7f", "del\\x7f"),
        ("ünïcode ok", "ünïcode ok"),
    ],
)
def test_printable_escapes_control_characters(raw: str, shown: str) -> None:
    assert printable(raw) == shown


def test_printable_multiline_keeps_newlines_and_tabs_only() -> None:
    assert printable("a\n\tb\r\x1b[2J", multiline=True) == "a\n\tb\\x0d\\x1b[2J"


@pytest.mark.parametrize(
    "name",
    [".git", ".GIT", ".Git", "git~1", "GIT~1", ".git.", ".git ", ".g\u200cit", ".git::$INDEX_ALLOCATION"],
)
def test_names_some_filesystem_reads_as_dot_git(name: str) -> None:
    assert is_git_dir_name(name)


@pytest.mark.parametrize("name", [".github", ".gitignore", "git", "git~2", ".gitmodules", "x.git"])
def test_ordinary_names_are_not_dot_git(name: str) -> None:
    assert not is_git_dir_name(name)


@pytest.mark.parametrize(
    "encode",
    [
        lambda v: v,
        lambda v: v[::-1],
        lambda v: v.encode().hex(),
        lambda v: v.encode().hex().upper(),
        lambda v: base64.b64encode(v.encode()).decode(),
        lambda v: base64.b64encode(b"x" + v.encode() + b"yz").decode(),
        lambda v: base64.b64encode(b"xy" + v.encode()).decode(),
        lambda v: base64.urlsafe_b64encode(b"\xff\xfe" + v.encode()).decode(),
        lambda v: v.encode("utf-16-le").decode("latin-1"),
        lambda v: v.encode("utf-16-be").decode("latin-1"),
    ],
)
def test_redact_finds_the_secret_in_each_encoding(encode: object) -> None:
    form = encode(SECRET)  # type: ignore[operator]
    text = f"before {form} after"
    out = redact(text, [SECRET])
    assert REDACTED in out
    # what is left of the encoded form is at most the two base64 groups at its ends
    # (a few characters of the value), never enough to rebuild it
    left = out.replace("before ", "").replace(" after", "").replace(REDACTED, "")
    assert len(left) <= 16


def test_redact_bytes_reports_whether_it_found_anything() -> None:
    data, found = redact_bytes(b"key=" + base64.b64encode(SECRET.encode()), [SECRET])
    assert found and REDACTED.encode() in data
    assert redact_bytes(b"nothing here", [SECRET]) == (b"nothing here", False)


def test_short_secrets_get_no_encoded_forms() -> None:
    """A 5-character value's hex would match ordinary commit ids: only the value itself."""
    assert secret_forms("abcde") == (b"abcde",)
    assert redact("commit 6162636465 abcde", ["abcde"]) == f"commit 6162636465 {REDACTED}"


def test_a_secret_as_a_json_or_python_string_literal_spells_it_is_found() -> None:
    """A transcript of JSON events holds a ``"`` or ``\\`` in a secret escaped; so does a
    Python string literal in a file the gate reads."""
    import json

    secret = 'pa"ss\\w\u00f6rd-7731'
    for text in (json.dumps({"t": secret}), json.dumps({"t": secret}, ensure_ascii=False)):
        assert redact(text, [secret]) == '{"t": "[REDACTED]"}'
    assert redact_bytes(b"KEY = 'pa\\\"ss\\\\w\\u00f6rd-7731'", [secret])[1]
    assert set(secret_forms('ab"c')) == {b'ab"c', b'ab\\"c'}  # short: only its spellings


def test_withheld_paths_covers_where_links_out_of_hidden_dirs_lead(tmp_path: Path) -> None:
    work = tmp_path / "forge"
    work.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "prod.env").write_text("B=2")
    (work / ".env").symlink_to(elsewhere / "prod.env")  # hidden link, visible target
    (work / "README.md").write_text("x")
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    (tmp_path / "dotfiles-ssh").mkdir()
    (tmp_path / "dotfiles-gh").mkdir()
    (home / ".ssh").symlink_to(tmp_path / "dotfiles-ssh")
    (home / ".config" / "gh").symlink_to(tmp_path / "dotfiles-gh")
    (home / "inside").mkdir()
    (home / ".inside-link").symlink_to(home / "inside")  # stays in the hidden home: no need
    found = withheld_paths(hidden=[work, home], extra=[tmp_path / "missing-key"])
    assert set(found) == {elsewhere / "prod.env", tmp_path / "dotfiles-ssh", tmp_path / "dotfiles-gh"}


def test_withheld_paths_resolves_the_ssh_agent_socket(tmp_path: Path) -> None:
    sock = tmp_path / "agent.sock"
    sock.write_text("")  # stands for the socket: only its path matters here
    (tmp_path / "link-to-sock").symlink_to(sock)
    found = withheld_paths(env={"SSH_AUTH_SOCK": str(tmp_path / "link-to-sock")})
    assert sock in found and tmp_path / "link-to-sock" not in found


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("~/keys/approver.pub", "HOME/keys/approver"),
        ("/etc/kavi/key", "/etc/kavi/key"),
        ("key::ssh-ed25519 AAAA", None),
        ("ssh-ed25519 AAAAC3Nza", None),
        ("", None),
    ],
)
def test_signing_key_files(tmp_path: Path, value: str, expected: str | None) -> None:
    files = signing_key_files(value, tmp_path)
    if expected is None:
        assert files == []
    else:
        assert files == [Path(expected.replace("HOME", str(tmp_path)))]


def test_the_sandbox_is_never_withheld(tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    box = runtime / "kavi-build-1"
    box.mkdir(parents=True)
    found = withheld_paths(env={"SSH_AUTH_SOCK": str(runtime)}, sandbox=box)
    assert [p for p in found if p == runtime or runtime in p.parents] == []


def test_exec_roots_keep_what_the_backend_needs_to_start(tmp_path: Path) -> None:
    """A node CLI installed under the (hidden) home: its package dir and node's prefix."""
    from kavi.confine.jail import exec_roots

    home = tmp_path / "home"
    node_prefix = home / ".nvm" / "versions" / "node" / "v20"
    (node_prefix / "bin").mkdir(parents=True)
    (node_prefix / "lib").mkdir()
    node = node_prefix / "bin" / "node"
    node.write_text("")
    node.chmod(0o755)
    package = node_prefix / "lib" / "node_modules" / "claude-code"
    package.mkdir(parents=True)
    (package / "cli.js").write_text("#!/usr/bin/env node\nconsole.log(1)\n")
    (node_prefix / "bin" / "claude").symlink_to(package / "cli.js")
    roots = exec_roots(str(node_prefix / "bin" / "claude"), str(node_prefix / "bin"), home)
    assert roots == [package, node_prefix]
    # a program directly in the home directory: the file alone, never the whole home
    (home / "tool").write_text("#!/bin/sh\n")
    assert exec_roots(str(home / "tool"), None, home)[0] == home / "tool"
    # ~/.local is no installation prefix to expose (it holds keyrings and more)
    (home / ".local" / "bin").mkdir(parents=True)
    (home / ".local" / "lib").mkdir()
    (home / ".local" / "bin" / "x").write_text("")
    assert exec_roots(str(home / ".local" / "bin" / "x"), None, home) == [home / ".local" / "bin"]
