"""A stand-in coding agent that learns only from its build packet.

:func:`install` writes an executable named ``claude`` (put its directory first on PATH;
the ``claude`` backend runs it in the sandbox, confined where the machine can). Like
Claude Code's headless mode it prints ``stream-json`` events ending in a ``result``
event (costing $0.01), and writes the two allowed files. What it writes depends on its
``mode`` and on ``KAVI_BUILD_PACKET.md`` in its working directory:

* ``learner`` — with no findings in the packet it writes ``write_note`` with an untyped
  helper (mypy --strict fails: no-untyped-def). When the packet names that finding
  (``- `skills/write_note.py:LINE` mypy [no-untyped-def]: …``) it takes the file as the
  previous attempt wrote it *from the packet* and annotates exactly the line named;
* ``stubborn`` — always the untyped helper (the same failure every time);
* ``governance`` — a correct skill, and an edit of ``.kavi/policy.yaml`` (forbidden path);
* ``subprocess`` — a skill importing ``subprocess`` (the policy scanner refuses it);
* ``guard`` — a test that writes outside its temporary directory by a route the static
  scanner cannot follow (the runtime guard refuses it at verify);
* ``hang`` — prints its first event, then sleeps (for interruption tests);
* ``slowtest`` — a correct skill whose test sleeps for a minute (interrupting verify).

It reports what it read and did in its transcript (``agent: …`` lines), which Kavi keeps
in the BUILD_LOG.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from support.fake_claude import cli_prelude
from support.forge import WRITE_NOTE_DIR

CREDENTIAL = "sk-ant-packet-agent-credential-0123456789"  # the claude backend's preflight wants one

MODES = ("learner", "stubborn", "governance", "subprocess", "guard", "hang", "slowtest")

UNTYPED_HELPER = 'def _heading(title):\n    return f"# {title}"\n\n\n'


def sources() -> dict[str, str]:
    skill = (WRITE_NOTE_DIR / "skills" / "write_note.py").read_text()
    test = (WRITE_NOTE_DIR / "tests" / "test_skill_write_note.py").read_text()
    typed_use = 'text = f"# {input.title}\\n\\n{input.body}\\n"'
    untyped_use = 'text = f"{_heading(input.title)}\\n\\n{input.body}\\n"'
    broken = skill.replace("class WriteNoteInput", UNTYPED_HELPER + "class WriteNoteInput", 1)
    broken = broken.replace(typed_use, untyped_use)
    # climbs from tmp_path to /tmp through a tail computed at run time: the policy scan's
    # documented blind spot (a computed tail after a sanctioned prefix), so only the
    # runtime guard can refuse it
    guard_test = test + (
        "\n\ndef _outside(base: Path) -> Path:\n"
        '    up = "../" * (len(base.parts) - 2)\n'
        '    return Path(str(base) + "/" + up + "kavi-agent-mark.txt")\n'
        "\n\ndef test_leaves_a_mark(tmp_path: Path) -> None:\n"
        '    _outside(tmp_path).write_text("x")\n'
    )
    return {
        "good": skill,
        "broken": broken,
        "test": test,
        "subprocess": skill.replace("import hashlib\n", "import hashlib\nimport subprocess\n", 1)
        + "\n\ndef _run() -> None:\n    subprocess.run(['true'], check=False)\n",
        "guard_test": guard_test,
        "slow_test": test + "\n\ndef test_takes_its_time() -> None:\n    import time\n\n    time.sleep(60)\n",
    }


SCRIPT = r"""
import re

MODE = {mode!r}
SOURCES = json.loads({sources!r})


def say(text):
    assistant({{"type": "text", "text": "agent: " + text}})


skill_path, test_path = ALLOWED  # from the Edit(./…) rules of the real CLI's argv
init()
packet = Path("KAVI_BUILD_PACKET.md").read_text()
attempt = re.search(r"^# BUILD_PACKET_(\d+) ", packet, re.M).group(1)
say(f"read KAVI_BUILD_PACKET.md (attempt {{attempt}}, {{len(packet)}} chars)")

if MODE == "hang":
    time.sleep(600)


def annotate(line):
    m = re.match(r"^(\s*)def (\w+)\((.*)\):\s*$", line)
    if m is None:
        return line
    params = [p.strip() for p in m.group(3).split(",") if p.strip()]
    typed = ", ".join(p if ":" in p else p + ": str" for p in params)
    return f"{{m.group(1)}}def {{m.group(2)}}({{typed}}) -> str:"


skill, test = SOURCES["broken"], SOURCES["test"]
if MODE == "learner":
    named = re.findall(r"^- `([^`:]+):(\d+)` mypy \[no-untyped-def\]", packet, re.M)
    block = re.search(
        r"^### `" + re.escape(skill_path) + r"` as attempt \d+ wrote it\n\n(`{{3,}})python\n(.*?)\n\1$",
        packet, re.M | re.S,
    )
    if named and block:
        lines = block.group(2).split("\n")
        for path, line in named:
            if path == skill_path:
                lines[int(line) - 1] = annotate(lines[int(line) - 1])
                say(f"the packet names {{path}}:{{line}} [no-untyped-def]; annotated that line")
        skill = "\n".join(lines) + "\n"
    else:
        say("no findings in the packet; writing my usual code")
elif MODE == "governance":
    skill = SOURCES["good"]
    with open(".kavi/policy.yaml", "a") as fh:
        fh.write("# the agent was here\n")
elif MODE == "subprocess":
    skill = SOURCES["subprocess"]
elif MODE == "guard":
    skill, test = SOURCES["good"], SOURCES["guard_test"]
elif MODE == "slowtest":
    skill, test = SOURCES["good"], SOURCES["slow_test"]

for target, text in ((skill_path, skill), (test_path, test)):
    write(target, text)
final = result_event()
final["total_cost_usd"] = 0.01
event(final)
"""


def install(bin_dir: Path, mode: str) -> Path:
    if mode not in MODES:
        raise ValueError(f"unknown agent mode {mode!r}")
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "claude"
    body = SCRIPT.format(mode=mode, sources=json.dumps(sources()))
    script.write_text(cli_prelude(sys.executable) + body)
    script.chmod(0o755)
    return script
