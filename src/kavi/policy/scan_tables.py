"""Fixed knowledge of the AST scanner: dangerous names that are not policy-driven.

Tables of qualified names per rule (dynamic execution, dynamic import, code objects,
unsafe deserialisation, namespace reach-arounds, frame/introspection escape hatches,
runtime-guard tampering), attribute names that are dangerous on any receiver, the
module roots through which a computed attribute may reach danger, and the generic
words excluded from the ``#anyattr`` leaf check. :mod:`kavi.policy.scan_rules`
combines them with a :class:`~kavi.policy.model.ScannerPolicy`.
"""

from __future__ import annotations

from typing import NamedTuple


class Danger(NamedTuple):
    rule: str
    what: str
    call_only: bool = False


# Dynamic execution of code held in strings or objects (KS201); gated by forbid_dynamic_exec.
DYN_EXEC: dict[str, str] = {
    "builtins.eval": "eval() runs a string as code",
    "builtins.exec": "exec() runs a string as code",
    "builtins.compile": "compile() turns a string into code",
    "builtins.breakpoint": "breakpoint() opens a debugger that runs arbitrary code",
    "sys.breakpointhook": "the breakpoint hook opens a debugger that runs arbitrary code",
    "sys.__breakpointhook__": "the breakpoint hook opens a debugger that runs arbitrary code",
    "builtins.execfile": "execfile() runs a file as code",
    "runpy": "runpy runs modules/files as code",
    "code": "the code module runs an interactive interpreter",
    "codeop": "codeop compiles strings to code",
    "timeit.timeit": "timeit runs code strings",
    "timeit.repeat": "timeit runs code strings",
    "timeit.Timer": "timeit runs code strings",
    "timeit.main": "timeit runs code strings",
    "pdb": "the debugger runs arbitrary code",
    "bdb": "the debugger runs arbitrary code",
    "cProfile.run": "cProfile.run runs a code string",
    "cProfile.runctx": "cProfile.runctx runs a code string",
    "cProfile.Profile": "cProfile.Profile().run runs a code string",
    "profile.run": "profile.run runs a code string",
    "profile.runctx": "profile.runctx runs a code string",
    "profile.Profile": "profile.Profile().run runs a code string",
    "trace": "trace runs code strings",
    "doctest": "doctest runs code held in strings",
    "logging.config.fileConfig": "fileConfig evaluates expressions from the configuration",
    "logging.config.BaseConfigurator": "the logging configurator imports and calls objects named by strings",
    "logging.config.DictConfigurator": "the logging configurator imports and calls objects named by strings",
    "logging.config.dictConfigClass": "the logging configurator imports and calls objects named by strings",
    "typing._eval_type": "evaluates annotation strings as code",
    "typing.evaluate_forward_ref": "evaluates an annotation string as code",
    "site.addsitedir": "site.addsitedir executes .pth files",
    "site.addpackage": "site.addpackage executes .pth files",
    "site.main": "site.main executes .pth files",
    "site.execsitecustomize": "site runs customisation modules",
    "site.execusercustomize": "site runs customisation modules",
    "rlcompleter": "rlcompleter evaluates expressions",
    "idlelib": "idlelib runs a Python shell",
    "tkinter.Tcl": "Tcl can run processes",
    "tkinter.Tk": "Tcl can run processes",
    "_tkinter": "Tcl can run processes",
    "logging.config.listen": "logging.config.listen evaluates configuration from a socket",
    "_xxsubinterpreters": "sub-interpreters run code strings",
    "_testcapi": "internal C API runs code",
}

# Dynamic imports and loaders (KS202); gated by forbid_dynamic_exec.
DYN_IMPORT: dict[str, str] = {
    "builtins.__import__": "__import__() imports a module named at run time",
    "builtins.help": "help() imports modules named by strings",
    "importlib.import_module": "import_module() imports a module named at run time",
    "importlib.__import__": "importlib.__import__ imports a module named at run time",
    "importlib.util.spec_from_file_location": "loads code from an arbitrary file",
    "importlib.util.spec_from_loader": "loads code through a custom loader",
    "importlib.util.module_from_spec": "creates a module from a spec",
    "importlib.util.LazyLoader": "custom import loaders execute code",
    "importlib.util._LazyModule": "import machinery internals",
    "importlib.util._find_spec": "import machinery internals",
    "importlib.machinery": "importlib.machinery loads code from arbitrary files",
    "importlib.abc": "custom import loaders execute code",
    "importlib._bootstrap": "import machinery internals",
    "importlib._bootstrap_external": "import machinery internals",
    "importlib.find_loader": "import loaders execute code",
    "_imp": "C import machinery",
    "imp": "imp loads code from arbitrary files",
    "zipimport": "zipimport loads code from archives",
    "pkgutil.get_loader": "import loaders execute code",
    "pkgutil.find_loader": "import loaders execute code",
    "pkgutil.resolve_name": "resolve_name imports a module named at run time",
    "pkgutil.ImpImporter": "import loaders execute code",
    "pydoc.locate": "pydoc.locate imports a module named at run time",
    "pydoc.importfile": "pydoc.importfile imports a file as a module",
    "pydoc.safeimport": "pydoc.safeimport imports a module named at run time",
    "sys.meta_path": "import hooks load code",
    "sys.path_hooks": "import hooks load code",
    "sys.path_importer_cache": "import hooks load code",
    "importlib.reload": "reload() runs a module's code again",
    "pydoc": "pydoc imports modules named by strings, runs pagers and serves HTTP",
    "_frozen_importlib": "import machinery internals",
    "_frozen_importlib_external": "import machinery internals",
    "importlib.metadata.EntryPoint": "an entry point imports the object it names",
    "importlib_metadata.EntryPoint": "an entry point imports the object it names",
    "unittest.TestLoader": "the test loader imports modules named at run time",
    "unittest.defaultTestLoader": "the test loader imports modules named at run time",
    "unittest.loader": "the test loader imports modules named at run time",
    "_pytest": "pytest internals import and run arbitrary files",
    "pydantic.ImportString": "ImportString imports whatever its input names",
    "pydantic.types.ImportString": "ImportString imports whatever its input names",
    "pydantic.PyObject": "PyObject imports whatever its input names",
    "pydantic.v1.PyObject": "PyObject imports whatever its input names",
    "pydantic.v1.types.PyObject": "PyObject imports whatever its input names",
    "pydantic.v1.utils.import_string": "import_string imports a module named at run time",
    "pydantic._internal._validators.import_string": "import_string imports a module named at run time",
}

# Building code or function objects (KS203): only when called (``isinstance`` is fine).
CODE_OBJECT: dict[str, str] = {
    "types.FunctionType": "constructing a function from a code object",
    "types.CodeType": "constructing a code object",
}

# Deserialisers that construct arbitrary objects (KS204); gated by forbid_dynamic_exec.
UNSAFE_DESER: dict[str, str] = {
    "yaml.unsafe_load": "yaml.unsafe_load constructs arbitrary objects",
    "yaml.unsafe_load_all": "yaml.unsafe_load_all constructs arbitrary objects",
    "yaml.Loader": "yaml.Loader constructs arbitrary objects",
    "yaml.UnsafeLoader": "yaml.UnsafeLoader constructs arbitrary objects",
    "yaml.CLoader": "yaml.CLoader constructs arbitrary objects",
    "yaml.CUnsafeLoader": "yaml.CUnsafeLoader constructs arbitrary objects",
    "yaml.add_constructor": "custom YAML constructors run code",
    "yaml.full_load": "yaml.full_load constructs Python objects",
    "yaml.full_load_all": "yaml.full_load_all constructs Python objects",
    "yaml.FullLoader": "yaml.FullLoader constructs Python objects",
    "yaml.CFullLoader": "yaml.CFullLoader constructs Python objects",
    "yaml.loader.Loader": "yaml.Loader constructs arbitrary objects",
    "yaml.loader.UnsafeLoader": "yaml.UnsafeLoader constructs arbitrary objects",
    "yaml.loader.FullLoader": "yaml.FullLoader constructs Python objects",
    "yaml.cyaml.CLoader": "yaml.CLoader constructs arbitrary objects",
    "yaml.cyaml.CUnsafeLoader": "yaml.CUnsafeLoader constructs arbitrary objects",
    "yaml.cyaml.CFullLoader": "yaml.CFullLoader constructs Python objects",
    "yaml.constructor.UnsafeConstructor": "the unsafe YAML constructor builds arbitrary objects",
    "yaml.constructor.FullConstructor": "the full YAML constructor builds Python objects",
    "yaml.constructor.Constructor": "the unsafe YAML constructor builds arbitrary objects",
    "pandas.read_pickle": "read_pickle unpickles arbitrary objects",
    "jsonpickle": "jsonpickle constructs arbitrary objects",
    "joblib.load": "joblib.load unpickles arbitrary objects",
    "copyreg": "copyreg registers pickle reducers",
}

# Namespace reach-arounds (KS302).
NAMESPACE: dict[str, str] = {
    "sys.modules": "sys.modules hands out any loaded module",
    "builtins.__dict__": "the builtins namespace",
    "gc.get_objects": "gc.get_objects reaches any live object",
    "gc.get_referrers": "gc.get_referrers reaches any live object",
    "gc.get_referents": "gc.get_referents reaches any live object",
}

# Frame and introspection escape hatches (KS304).
ESCAPE: dict[str, str] = {
    "sys._getframe": "frame access reaches other scopes' globals and builtins",
    "sys._current_frames": "frame access reaches other scopes' globals and builtins",
    "sys._current_exceptions": "frame access reaches other scopes' globals and builtins",
    "sys.call_tracing": "call_tracing runs a function under a tracer",
    "inspect.currentframe": "frame access reaches other scopes' globals and builtins",
    "inspect.stack": "frame access reaches other scopes' globals and builtins",
    "inspect.trace": "frame access reaches other scopes' globals and builtins",
    "inspect.getouterframes": "frame access reaches other scopes' globals and builtins",
    "inspect.getinnerframes": "frame access reaches other scopes' globals and builtins",
    "inspect.getclosurevars": "closure access reaches other scopes' globals and builtins",
    "traceback.walk_stack": "frame access reaches other scopes' globals and builtins",
}

# Reading the process environment (KS601): a skill receives its declared secrets in
# ``ctx.secrets``; the environment holds Kavi's (API keys, other skills' secrets).
# :mod:`kavi.policy.scan_env` lets locale/TZ reads and writes of variables through.
ENV_READ: dict[str, str] = {
    "os.environ": "os.environ hands out the process environment; read declared secrets from ctx.secrets",
    "os.environb": "os.environb hands out the process environment; read declared secrets from ctx.secrets",
    "os.getenv": "os.getenv reads the process environment; read declared secrets from ctx.secrets",
    "os.getenvb": "os.getenvb reads the process environment; read declared secrets from ctx.secrets",
    "os.path.expandvars": "expandvars substitutes environment variables",
    "os._Environ": "os._Environ wraps the process environment",
    "dotenv": "python-dotenv reads .env files into the environment",
    "decouple": "python-decouple reads the environment and .env files",
    "environs": "environs reads the environment and .env files",
    "envparse": "envparse reads the environment",
    "pydantic_settings": "pydantic-settings fills models from the environment and .env files",
    "pydantic.BaseSettings": "BaseSettings fills models from the environment",
    "pydantic.env_settings": "BaseSettings fills models from the environment",
    "pydantic.v1.BaseSettings": "BaseSettings fills models from the environment",
    "pydantic.v1.env_settings": "BaseSettings fills models from the environment",
}

# Stores of credentials (KS602).
SECRET_STORES: dict[str, str] = {
    "netrc": "netrc reads ~/.netrc (login credentials)",
    "keyring": "keyring reads the user's credential store",
    "secretstorage": "secretstorage reads the user's credential store",
    "getpass.getpass": "getpass asks the user at the terminal for a secret",
    "pwd.getpwall": "pwd.getpwall lists every account",
}

# Tampering with the runtime guard (KS305).
GUARD: dict[str, str] = {
    "sys.addaudithook": "installing audit hooks tampers with the runtime guard",
    "sys.settrace": "tracing hooks tamper with the runtime guard",
    "sys.setprofile": "profiling hooks tamper with the runtime guard",
    "sys.monitoring": "monitoring hooks tamper with the runtime guard",
    "threading.settrace": "tracing hooks tamper with the runtime guard",
    "threading.setprofile": "profiling hooks tamper with the runtime guard",
    "threading.settrace_all_threads": "tracing hooks tamper with the runtime guard",
    "threading.setprofile_all_threads": "profiling hooks tamper with the runtime guard",
}

#: Attribute names that are dangerous on *any* receiver: they have no benign spelling.
ATTR_ALWAYS: dict[str, Danger] = {
    name: Danger("KS304", f"introspection attribute {name!r} escapes the sandbox")
    for name in (
        "__subclasses__",
        "__globals__",
        "__code__",
        "__loader__",
        "func_globals",
        "func_code",
        "f_globals",
        "f_locals",
        "f_builtins",
        "f_back",
        "f_code",
        "gi_frame",
        "gi_code",
        "cr_frame",
        "cr_code",
        "ag_frame",
        "ag_code",
        "tb_frame",
        "co_code",
        "_getframe",
        "_current_frames",
        "currentframe",
        "getouterframes",
    )
}
ATTR_ALWAYS["__builtins__"] = Danger("KS303", "'__builtins__' reaches eval/exec/__import__")
for _name in ("addaudithook", "settrace", "setprofile", "call_tracing"):
    ATTR_ALWAYS[_name] = Danger("KS305", f"{_name!r} tampers with the runtime guard")

ATTR_PROCESS: tuple[str, ...] = (
    "subprocess_exec",
    "_make_subprocess_transport",
    "subprocess_shell",
    "create_subprocess_exec",
    "create_subprocess_shell",
    "posix_spawn",
    "posix_spawnp",
    "execl",
    "execle",
    "execlp",
    "execlpe",
    "execv",
    "execve",
    "execvp",
    "execvpe",
    "spawnl",
    "spawnle",
    "spawnlp",
    "spawnlpe",
    "spawnv",
    "spawnve",
    "spawnvp",
    "spawnvpe",
    "forkpty",
    "startfile",
    "getoutput",
    "getstatusoutput",
    "check_output",
    "Popen",
    "popen",
    "popen2",
    "popen3",
    "popen4",
    "pipepager",
)
ATTR_DYNEXEC: dict[str, Danger] = {
    "load_extension": Danger("KS201", "loading a native extension runs arbitrary code"),
    "enable_load_extension": Danger("KS201", "loading a native extension runs arbitrary code"),
    "exec_module": Danger("KS202", "loader.exec_module runs a module's code"),
    "load_module": Danger("KS202", "loader.load_module runs a module's code"),
    "spec_from_file_location": Danger("KS202", "loads code from an arbitrary file"),
    "spec_from_loader": Danger("KS202", "loads code through a custom loader"),
    "module_from_spec": Danger("KS202", "creates a module from a spec"),
    "source_to_code": Danger("KS202", "compiles source to code"),
    "SourceFileLoader": Danger("KS202", "loads code from an arbitrary file"),
    "SourcelessFileLoader": Danger("KS202", "loads code from an arbitrary file"),
    "ExtensionFileLoader": Danger("KS202", "loads native code from an arbitrary file"),
    "__import__": Danger("KS202", "__import__ imports a module named at run time"),
    "import_module": Danger("KS202", "import_module imports a module named at run time"),
}
ATTR_NETWORK: tuple[str, ...] = (
    "create_connection",
    "create_datagram_endpoint",
    "create_unix_connection",
    "create_unix_server",
    "create_server",
    "open_connection",
    "open_unix_connection",
    "start_server",
    "start_unix_server",
    "sock_connect",
    "sock_sendall",
    "sock_recv",
    "urlopen",
    "urlretrieve",
    "getaddrinfo",
    "getnameinfo",
    "sock_accept",
    "sock_sendto",
    "sock_recvfrom",
    "sock_sendfile",
)

#: Roots of modules that hand out dangerous objects to a computed attribute name.
SENSITIVE_ROOTS: frozenset[str] = frozenset(
    [
        "os",
        "posix",
        "nt",
        "sys",
        "builtins",
        "subprocess",
        "importlib",
        "_imp",
        "imp",
        "ctypes",
        "_ctypes",
        "cffi",
        "socket",
        "_socket",
        "pty",
        "shutil",
        "io",
        "types",
        "code",
        "codeop",
        "runpy",
        "pickle",
        "_pickle",
        "cPickle",
        "marshal",
        "shelve",
        "dill",
        "multiprocessing",
        "concurrent",
        "asyncio",
        "platform",
        "pdb",
        "bdb",
        "inspect",
        "gc",
        "webbrowser",
        "pydoc",
        "timeit",
        "trace",
        "profile",
        "cProfile",
        "threading",
        "_thread",
        "zipimport",
        "pkgutil",
        "site",
        "doctest",
        "_posixsubprocess",
        "traceback",
        "_tkinter",
        "tkinter",
        "rlcompleter",
    ]
)

#: Last components of dangerous names that are also everyday method names: not
#: suspicious on their own when read from a computed attribute (``plugin.run()``).
GENERIC_LEAVES: frozenset[str] = frozenset(
    [
        "run",
        "main",
        "debug",
        "load",
        "stack",
        "trace",
        "code",
        "compile",
        "request",
        "client",
        "server",
        "util",
        "abc",
        "modules",
        "listen",
        "serve",
        "locate",
        "repeat",
        "Timer",
        "Profile",
        "Loader",
        "Tk",
        "Tcl",
        "browse",
        "pager",
        "kill",
        "fork",
        "spawn",
        "process",
        "streams",
        "help",
        "invoke",
        "simple_server",
        "runctx",
        "testfile",
        "testmod",
        "__dict__",
    ]
)
