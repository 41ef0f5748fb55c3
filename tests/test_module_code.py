"""The module-level-code invariant: idioms that do no I/O pass, everything else is named
with a fix, and an accepted idiom cannot smuggle a call in."""

from __future__ import annotations

import ast
import sys

import pytest

from kavi.policy.invariants import check_test
from kavi.policy.model import ScannerPolicy
from kavi.policy.module_code import FIX, module_code_findings
from kavi.policy.scanner import scan_source

TEST_FN = "\n\ndef test_x() -> None:\n    assert True\n"


def findings(source: str) -> list[tuple[int, str]]:
    return module_code_findings(ast.parse(source))


ACCEPTED = [
    "import logging\nlogger = logging.getLogger(__name__)\n",
    "import logging\nlog = logging.getLogger('kavi.skill')\nroot = logging.getLogger()\n",
    "from logging import getLogger\nlog = getLogger(__name__)\n",
    "import re\nWORD = re.compile(r'\\w+', re.I | re.MULTILINE)\n",
    "import re\nRAW = re.compile(b'x+', flags=re.IGNORECASE)\nPLAIN = re.compile('a', 0)\n",
    "KEYS = frozenset({'a', 'b'})\nNAMES = tuple(['x', 'y'])\nEMPTY = set()\nL = list((1, 2))\n",
    "import re\nNESTED = (frozenset({'a'}), re.compile('b'), {'k': tuple([1])})\n",
    "from typing import TypeAlias\nAlias: TypeAlias = dict[str, list[int]]\n"
    "Opt: TypeAlias = 'Alias | None'\n",
    "import typing\nAlias: typing.TypeAlias = typing.Mapping[str, int]\n",
    "from typing import NewType, TypeVar\nT = TypeVar('T', bound='Base')\nUserId = NewType('UserId', int)\n",
    "a, b = 1, 2\n__all__ = ['a', 'b']\nLIMIT: int = -1\n",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pathlib import Path\n",
]


@pytest.mark.parametrize("source", ACCEPTED)
def test_idioms_that_do_no_io_are_accepted(source: str) -> None:
    assert findings(source) == []
    assert check_test((source + TEST_FN).encode(), "tests/test_skill_x.py") == []


@pytest.mark.skipif(sys.version_info < (3, 12), reason="the type statement needs Python 3.12")
def test_the_type_statement_is_accepted_without_calls() -> None:
    assert findings("type Pair = tuple[int, int]\n") == []
    ((_, message),) = findings("type Pair = make_pair_type()\n")
    assert "type alias must not call" in message


REFUSED = [
    ("import re\nP = re.compile(open('/etc/passwd').read())\n", "constant pattern and flags"),
    ("import re, os\nP = re.compile('x', os.getpid())\n", "constant pattern and flags"),
    ("import logging, os\nlog = logging.getLogger(os.environ['X'])\n", "__name__ or a string"),
    ("def gen():\n    yield 1\nX = frozenset(x for x in gen())\n", "literal of constants"),
    ("X = frozenset(map(print, [1, 2]))\n", "literal of constants"),
    ("X = tuple([open('/etc/hosts').read()])\n", "literal of constants"),
    ("import os as re\nP = re.compile('x')\n", "not the standard one"),
    ("import re\nre = __import__('os')\nP = re.compile('x')\n", "not the standard one"),
    ("import re\nclass A:\n    re.compile = print\nP = re.compile('x')\n", "not the standard one"),
    ("import re\nclass A:\n    global re\n    re = 1\nP = re.compile('x')\n", "not the standard one"),
    ("import re\nclass A:\n    setattr(re, 'compile', print)\nP = re.compile('x')\n", "not the standard one"),
    (
        "import logging\nlogging.getLogger = print\nlog = logging.getLogger(__name__)\n",
        "not the standard one",
    ),
    ("frozenset = print\nX = frozenset({1})\n", "not the standard one"),
    ("from somewhere import *\nX = frozenset({1})\n", "not the standard one"),
    ("import builtins\nclass A:\n    builtins.tuple = print\nX = tuple([1])\n", "not the standard one"),
    ("from typing import TypeAlias\nAlias: TypeAlias = make_type()\n", FIX),
    ("from typing import TypeVar\nname = 'T'\nT = TypeVar(name)\n", "constant name and type expressions"),
    ("import os\nos.environ['X'] = '1'\n", FIX),
    ("print('hello')\n", FIX),
    ("import os\nCWD = os.getcwd()\n", FIX),
]


@pytest.mark.parametrize(("source", "why"), REFUSED)
def test_everything_else_is_refused_with_how_to_fix_it(source: str, why: str) -> None:
    found = findings(source)
    assert found, source
    _line, message = found[-1]
    assert why in message
    assert message.startswith("top-level ") and "runs code at import time" in message


def test_the_generic_message_says_where_to_move_the_code() -> None:
    ((line, message),) = findings("import json\nDATA = json.loads('{}')\n")
    assert line == 2
    assert "move it into execute() or a function" in message
    assert "re.compile" in message and "logging.getLogger(__name__)" in message


def test_accepted_idioms_are_clean_for_the_scanner_too() -> None:
    for source in ACCEPTED:
        assert scan_source(source, "skills/x.py", ScannerPolicy()) == [], source
