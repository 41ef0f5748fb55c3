"""The governance policy: the typed form of ``.kavi/policy.yaml``.

Four parts, each read by one component:

* ``scanner`` — what the static policy scan forbids in generated code;
* ``runtime`` — first-match rules deciding ALLOW / DENY / REQUIRE_APPROVAL (and how
  confined) for a skill run, the paths a skill may read and write, its resource limits;
* ``sandbox`` — files withheld from build sandboxes, and whether builds are confined;
* ``verify`` — how the verify gates run, and the generated tests' resource limits.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kavi.policy.scan_places import SECRET_FILE_PATTERNS


class SideEffect(str, Enum):
    READ_ONLY = "READ_ONLY"
    FILE_WRITE = "FILE_WRITE"
    NETWORK = "NETWORK"
    MONEY = "MONEY"
    MESSAGING = "MESSAGING"


class Decision(str, Enum):
    ALLOW = "ALLOW"
    DENY = "DENY"
    REQUIRE_APPROVAL = "REQUIRE_APPROVAL"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


DEFAULT_FORBIDDEN_IMPORTS: tuple[str, ...] = (
    "subprocess",
    "pty",
    "paramiko",
    "pexpect",
    "fabric",
    "ctypes",
    "cffi",
    "multiprocessing",
    "concurrent.futures.process",
    "_posixsubprocess",
    "runpy",
    "code",
    "codeop",
    "timeit.timeit",
    "timeit.repeat",
    "timeit.Timer",
    "timeit.main",
    "pickle",
    "cPickle",
    "_pickle",
    "dill",
    "cloudpickle",
    "marshal",
    "shelve",
    "imp",
    "pkgutil",
    "zipimport",
    "posix",
    "nt",
    "pdb",
    "bdb",
    "cProfile",
    "profile",
    "trace",
    "webbrowser",
    "os.system",
    "_ctypes",
    "_winapi",
    "_xxsubinterpreters",
    "ptyprocess",
    "sh",
    "plumbum",
    "jsonpickle",
    "joblib",
    "rlcompleter",
    "idlelib",
    "tkinter",
    "_tkinter",
    "ensurepip",
    "venv",
    "pip",
    "distutils.spawn",
    "pipes",
    "invoke",
    "delegator",
    "envoy",
    "sarge",
    "execnet",
    "_cffi_backend",
    "setuptools",
    "distutils",
    "_distutils_hack",
    "pkg_resources",
    "stevedore",
    "pygit2",
    "antigravity",
)

DEFAULT_FORBIDDEN_CALLS: tuple[str, ...] = (
    "os.system",
    "os.popen",
    "os.execl",
    "os.execle",
    "os.execlp",
    "os.execlpe",
    "os.execv",
    "os.execve",
    "os.execvp",
    "os.execvpe",
    "os.spawnl",
    "os.spawnle",
    "os.spawnlp",
    "os.spawnlpe",
    "os.spawnv",
    "os.spawnve",
    "os.spawnvp",
    "os.spawnvpe",
    "os.posix_spawn",
    "os.posix_spawnp",
    "os.fork",
    "os.forkpty",
    "os.kill",
    "os.killpg",
    "os.startfile",
    "asyncio.create_subprocess_exec",
    "asyncio.create_subprocess_shell",
    "asyncio.subprocess",
    "os.popen2",
    "os.popen3",
    "os.popen4",
    "os.register_at_fork",
    "platform.popen",
    "platform._syscmd_ver",
    "platform._syscmd_file",
    "platform._syscmd_uname",
    "pydoc.pipepager",
    "pydoc.tempfilepager",
    "pydoc.pager",
    "pydoc.getpager",
    "uuid._get_command_stdout",
    "os._spawnvef",
    "os._execvpe",
    "fcntl.ioctl",
    "termios.TIOCSTI",
    "platform.architecture",
    "signal.pidfd_send_signal",
    "signal.pthread_kill",
    "anyio.run_process",
    "anyio.open_process",
    "trio.run_process",
    "trio.lowlevel.open_process",
    "click.launch",
    "click.edit",
    "click.echo_via_pager",
    "click.termui.launch",
    "click.termui.edit",
    "click.termui.echo_via_pager",
    "typer.launch",
)

DEFAULT_NETWORK_MODULES: tuple[str, ...] = (
    "socket",
    "_socket",
    "ssl",
    "_ssl",
    "socketserver",
    "http.client",
    "http.server",
    "urllib.request",
    "urllib.robotparser",
    "urllib3",
    "requests",
    "httpx",
    "aiohttp",
    "ftplib",
    "smtplib",
    "poplib",
    "imaplib",
    "nntplib",
    "telnetlib",
    "xmlrpc",
    "asyncio.streams",
    "websocket",
    "websockets",
    "grpc",
    "wsgiref.simple_server",
    "smtpd",
    "asyncore",
    "asynchat",
    "httplib2",
    "pycurl",
    "tornado",
    "twisted",
    "zmq",
    "paho",
    "dns",
    "aiosmtplib",
    "boto3",
    "botocore",
    "openai",
    "anthropic",
    "mechanize",
    "selenium",
    "scrapy",
    "socks",
    "pydoc.serve",
    "pydoc.browse",
    "logging.config.listen",
    "logging.handlers.SocketHandler",
    "logging.handlers.DatagramHandler",
    "logging.handlers.HTTPHandler",
    "logging.handlers.SMTPHandler",
    "logging.handlers.SysLogHandler",
    "httpcore",
    "anyio.connect_tcp",
    "anyio.connect_unix",
    "anyio.create_tcp_listener",
    "anyio.create_unix_listener",
    "anyio.create_udp_socket",
    "anyio.create_connected_udp_socket",
    "anyio.getaddrinfo",
    "anyio.getnameinfo",
    "trio.open_tcp_stream",
    "trio.open_tcp_listeners",
    "trio.serve_tcp",
    "trio.socket",
    "xml.dom.xmlbuilder",
)

#: Files withheld from build sandboxes: the names credentials files go by (one table with
#: the scanner's secret-file rule).
DEFAULT_SANDBOX_EXCLUDE: tuple[str, ...] = SECRET_FILE_PATTERNS


class ScannerPolicy(_Strict):
    """Rules for the static scan of generated code (skill and test file)."""

    forbidden_imports: list[str] = Field(default_factory=lambda: list(DEFAULT_FORBIDDEN_IMPORTS))
    forbidden_calls: list[str] = Field(default_factory=lambda: list(DEFAULT_FORBIDDEN_CALLS))
    forbid_dynamic_exec: bool = True
    network: bool = False
    network_modules: list[str] = Field(default_factory=lambda: list(DEFAULT_NETWORK_MODULES))
    allowed_write_paths: list[str] = Field(default_factory=lambda: ["vault_out/", "artifacts_out/"])


Confine = Literal["auto", "required", "off"]


def _confine_value(value: Any) -> Any:
    """``confine: off`` unquoted is a boolean to YAML 1.1 (PyYAML): read it as meant."""
    if value is False:
        return "off"
    if value is True:
        return "auto"
    return value


class Limits(_Strict):
    """Resource limits of a confined process tree (each process: CPU seconds, address
    space, file size; the tree: processes). Exceeding one kills the whole tree."""

    cpu_seconds: int = Field(default=30, ge=1)
    memory_mb: int = Field(default=2048, ge=64)
    processes: int = Field(default=32, ge=1)
    file_size_mb: int = Field(default=64, ge=1)
    tmp_mb: int = Field(default=64, ge=1)  # the private /tmp (a generated test's scratch dir)


class RuleMatch(_Strict):
    side_effect: SideEffect | None = None
    skill: str | None = None


class RuntimeRule(_Strict):
    match: RuleMatch = Field(default_factory=RuleMatch)
    decision: Decision
    reason: str = ""
    # auto: confined by the operating system where the machine can, else (READ_ONLY and
    # FILE_WRITE only) under the in-process guard alone; required: refuse to run
    # unconfined; off: run without OS confinement (the guard only), and say so
    confine: Confine = "auto"
    # the declared secrets this rule grants (None: every secret the skill declared)
    secrets: list[str] | None = None

    _confine = field_validator("confine", mode="before")(_confine_value)


def _default_rules() -> list[RuntimeRule]:
    return [
        RuntimeRule(
            match=RuleMatch(side_effect=SideEffect.READ_ONLY),
            decision=Decision.ALLOW,
            reason="read-only skills are allowed",
        ),
        RuntimeRule(
            match=RuleMatch(side_effect=SideEffect.FILE_WRITE),
            decision=Decision.ALLOW,
            reason="file writes are allowed inside allowed_write_paths",
        ),
        RuntimeRule(
            match=RuleMatch(side_effect=SideEffect.NETWORK),
            decision=Decision.DENY,
            reason="network access is off in this policy",
        ),
        RuntimeRule(
            match=RuleMatch(side_effect=SideEffect.MONEY),
            decision=Decision.DENY,
            reason="skills may not move money under this policy",
        ),
        RuntimeRule(
            match=RuleMatch(side_effect=SideEffect.MESSAGING),
            decision=Decision.DENY,
            reason="skills may not send messages under this policy",
        ),
    ]


class RuntimePolicy(_Strict):
    allowed_write_paths: list[str] = Field(default_factory=lambda: ["vault_out/", "artifacts_out/"])
    allowed_read_paths: list[str] = Field(default_factory=lambda: ["vault_out/"])
    rules: list[RuntimeRule] = Field(default_factory=_default_rules)
    default: Decision = Decision.DENY
    timeout_seconds: float = Field(default=60.0, gt=0)  # wall time of one run
    limits: Limits = Field(default_factory=Limits)


class SandboxPolicy(_Strict):
    exclude: list[str] = Field(default_factory=lambda: list(DEFAULT_SANDBOX_EXCLUDE))
    max_file_bytes: int = 1_000_000
    # auto: namespace jail for backend processes when the kernel allows it; required:
    # refuse to build without it; off: never (the tripwire still guards the repository)
    confine: Confine = "auto"
    max_files: int = Field(default=20_000, ge=100)
    max_depth: int = Field(default=64, ge=8)

    _confine = field_validator("confine", mode="before")(_confine_value)


class VerifyPolicy(_Strict):
    """How the verify gates run the external tools (the repository's own configs are ignored)."""

    ruff_select: list[str] = Field(default_factory=lambda: ["E", "F", "W", "B", "UP"])
    ruff_ignore: list[str] = Field(default_factory=list)
    line_length: int = Field(default=120, ge=60, le=400)
    mypy_strict: bool = True
    pytest_timeout_seconds: float = Field(default=120.0, gt=0)  # wall time of the generated tests
    tool_timeout_seconds: float = Field(default=300.0, gt=0)
    limits: Limits = Field(default_factory=lambda: Limits(cpu_seconds=120, tmp_mb=256))
    # auto: generated tests run in namespaces where the machine can, else under the guard
    # alone (which then also confines reads); required: fail the pytest gate without them
    confine: Confine = "auto"

    _confine = field_validator("confine", mode="before")(_confine_value)


ArtifactKindName = Literal[
    "SKILL_SPEC",
    "BUILD_PACKET",
    "BUILD_LOG",
    "VERIFICATION_REPORT",
    "PROMOTION_RECORD",
    "RUN_RECORD",
    "REVOCATION_RECORD",
    "RESEARCH_NOTE",
    "NOTE",
]


def _default_mirrored() -> list[ArtifactKindName]:
    return [
        "SKILL_SPEC",
        "BUILD_PACKET",
        "VERIFICATION_REPORT",
        "PROMOTION_RECORD",
        "REVOCATION_RECORD",
        "RESEARCH_NOTE",
    ]


class MirrorPolicy(_Strict):
    """What ``refs/kavi/ledger`` carries beyond digests (see :mod:`kavi.ledger.privacy`)."""

    # artifact kinds whose bytes enter the mirror's tree; the others travel as their digest
    artifacts: list[ArtifactKindName] = Field(default_factory=_default_mirrored)
    # a run's input, output and error in its event (default: only their SHA-256 digests)
    run_data: bool = False


class Policy(_Strict):
    version: Literal[1] = 1
    scanner: ScannerPolicy = Field(default_factory=ScannerPolicy)
    runtime: RuntimePolicy = Field(default_factory=RuntimePolicy)
    sandbox: SandboxPolicy = Field(default_factory=SandboxPolicy)
    verify: VerifyPolicy = Field(default_factory=VerifyPolicy)
    mirror: MirrorPolicy = Field(default_factory=MirrorPolicy)


def parse_policy(text: str, *, source: str = ".kavi/policy.yaml") -> Policy:
    from kavi.errors import ConfigError
    from kavi.yamlio import load_yaml_model

    return load_yaml_model(Policy, text, source=source, error=ConfigError)
