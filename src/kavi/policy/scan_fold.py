"""Lazy constant folding for the AST scanner.

Generated code hides names in computed strings: ``"sys" + "tem"``, f-strings,
``"".join([...])``, ``chr()`` sequences, ``bytes.decode``, ``[::-1]``, ``%`` and
``.format``, base64/rot13/hex, comprehensions over constant lists. :class:`Folder`
evaluates such expressions to the *set* of constant values they may take (at most
:data:`MAX_CANDS`), following variables through the binding records kept by the
scanner's scopes, or returns ``None`` when the value is not statically known.

Folding runs only the side-effect-free operations of ``str``/``bytes``/``int`` on
values taken from the source, never anything the source names, and refuses inputs
that could blow up memory (huge repeats, widths, shifts and powers).

Paths are folded by :class:`kavi.policy.scan_pathfold.PathFolder`, built on this one.
"""

from __future__ import annotations

import ast
import base64
import binascii
import codecs
import operator
import posixpath
import re
import zlib
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from kavi.policy.scan_scope import Rec, Scope, Val

MAX_CANDS = 16
MAX_LEN = 100_000
MAX_ITEMS = 256
MAX_DEPTH = 40

Cands = tuple[object, ...]


class Resolver(Protocol):
    """What folding needs from the analysis (implemented by the engine)."""

    test_module: bool
    by_ident: list[Scope]
    attr_written: set[str]

    def recs_for(self, name: str, scope: Scope) -> dict[tuple[int, int], Rec] | None: ...

    def attr_recs_for(self, name: str) -> dict[tuple[int, int], Rec] | None: ...

    def quiet(self, node: ast.expr, scope: Scope) -> Val: ...

    def param_scope(self, name: str, scope: Scope) -> Scope | None: ...

    def binding_scope(self, name: str, scope: Scope) -> Scope | None: ...

    def own_methods(self) -> frozenset[str]: ...


_BIG_NUMBER = re.compile(r"\d{6,}|\*")

_BINOPS: dict[type[ast.operator], Callable[[object, object], object]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Mod: operator.mod,
    ast.FloorDiv: operator.floordiv,
    ast.BitXor: operator.xor,
    ast.BitOr: operator.or_,
    ast.BitAnd: operator.and_,
    ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
    ast.Pow: operator.pow,
}

_UNOPS: dict[type[ast.unaryop], Callable[[Any], object]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Invert: operator.invert,
    ast.Not: operator.not_,
}

_STR_METHODS: frozenset[str] = frozenset(
    [
        "join",
        "decode",
        "encode",
        "upper",
        "lower",
        "strip",
        "lstrip",
        "rstrip",
        "replace",
        "format",
        "swapcase",
        "title",
        "capitalize",
        "casefold",
        "removeprefix",
        "removesuffix",
        "split",
        "rsplit",
        "zfill",
        "center",
        "ljust",
        "rjust",
        "hex",
        "fromhex",
        "translate",
        "maketrans",
        "partition",
        "rpartition",
        "splitlines",
        "expandtabs",
        "__add__",
        "__mul__",
        "__getitem__",
        "__mod__",
        "__rmod__",
        "__radd__",
        "format_map",
    ]
)

_STR_CONSTS: dict[str, object] = {
    "string.ascii_lowercase": "abcdefghijklmnopqrstuvwxyz",
    "string.ascii_uppercase": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "string.ascii_letters": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "string.digits": "0123456789",
    "string.hexdigits": "0123456789abcdefABCDEF",
    "string.octdigits": "01234567",
    "string.punctuation": "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
    "string.whitespace": " \t\n\r\x0b\x0c",
    "string.printable": "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ \t\n\r\x0b\x0c",
    "os.sep": "/",
    "os.path.sep": "/",
    "os.extsep": ".",
    "os.curdir": ".",
    "os.pardir": "..",
    "os.linesep": "\n",
    "os.devnull": "/dev/null",
}


def _decompress(data: bytes) -> bytes:
    return zlib.decompressobj().decompress(data, MAX_LEN)


_FUNCS: dict[str, Callable[..., object]] = {
    "builtins.chr": chr,
    "builtins.ord": ord,
    "builtins.str": str,
    "builtins.bytes": bytes,
    "builtins.bytearray": bytearray,
    "builtins.int": int,
    "builtins.list": list,
    "builtins.tuple": tuple,
    "builtins.reversed": lambda x: list(reversed(x)),
    "builtins.sorted": sorted,
    "builtins.repr": repr,
    "builtins.ascii": ascii,
    "builtins.format": format,
    "builtins.len": len,
    "builtins.hex": hex,
    "builtins.oct": oct,
    "builtins.bin": bin,
    "builtins.abs": abs,
    "builtins.min": min,
    "builtins.max": max,
    "builtins.sum": sum,
    "codecs.decode": codecs.decode,
    "codecs.encode": codecs.encode,
    "base64.b64decode": base64.b64decode,
    "base64.standard_b64decode": base64.standard_b64decode,
    "base64.urlsafe_b64decode": base64.urlsafe_b64decode,
    "base64.b32decode": base64.b32decode,
    "base64.b16decode": base64.b16decode,
    "base64.b85decode": base64.b85decode,
    "base64.a85decode": base64.a85decode,
    "base64.decodebytes": base64.decodebytes,
    "base64.b64encode": base64.b64encode,
    "binascii.unhexlify": binascii.unhexlify,
    "binascii.a2b_hex": binascii.a2b_hex,
    "binascii.a2b_base64": binascii.a2b_base64,
    "binascii.hexlify": binascii.hexlify,
    "zlib.decompress": _decompress,
    "operator.add": operator.add,
    "operator.concat": operator.concat,
    "operator.mul": operator.mul,
    "operator.getitem": operator.getitem,
    "os.path.join": posixpath.join,
}

_SAFE_RECEIVERS = (str, bytes, bytearray, tuple, list, dict, int)
_TYPE_RECEIVERS: dict[str, type] = {
    "builtins.str": str,
    "builtins.bytes": bytes,
    "builtins.bytearray": bytearray,
    "builtins.dict": dict,
}


def _too_big(value: object) -> bool:
    if isinstance(value, (str, bytes, bytearray, tuple, list, dict)):
        return len(value) > MAX_LEN
    if isinstance(value, int) and not isinstance(value, bool):
        return value.bit_length() > 4096
    return False


def _guard_args(args: Iterable[object]) -> bool:
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_LEN:
            return False
        if isinstance(arg, str) and _BIG_NUMBER.search(arg) and ("{" in arg or "%" in arg):
            return False
    return True


def _product(parts: list[Cands], combine: Callable[[list[object]], object]) -> Cands | None:
    combos: list[list[object]] = [[]]
    for cands in parts:
        combos = [[*prev, c] for prev in combos for c in cands]
        if len(combos) > MAX_CANDS:
            return None
    out: list[object] = []
    for combo in combos:
        try:
            value = combine(combo)
        except Exception:
            return None
        if _too_big(value):
            return None
        if value not in out:
            out.append(value)
    return tuple(out)


def _elements(value: object) -> list[object] | None:
    if isinstance(value, (str, bytes, bytearray, tuple, list, dict)):
        items = list(value)
    else:
        return None
    return items if len(items) <= MAX_ITEMS else None


class Folder:
    def __init__(self, resolver: Resolver) -> None:
        self.res = resolver
        self._active: set[tuple[int, str]] = set()
        self._depth = 0

    # -- constants ----------------------------------------------------------------

    def fold(self, node: ast.AST, scope: Scope, local: dict[str, object] | None = None) -> Cands | None:
        if self._depth > MAX_DEPTH:
            return None
        self._depth += 1
        try:
            return self._fold(node, scope, local)
        except (RecursionError, MemoryError):
            return None
        finally:
            self._depth -= 1

    def fold_str(self, node: ast.AST, scope: Scope) -> list[str] | None:
        cands = self.fold(node, scope)
        if cands is None:
            return None
        out: list[str] = []
        for c in cands:
            if isinstance(c, str):
                out.append(c)
            elif isinstance(c, (bytes, bytearray)):
                out.append(bytes(c).decode("latin-1"))
            else:
                return None
        return out

    def _fold(self, node: ast.AST, scope: Scope, local: dict[str, object] | None) -> Cands | None:
        cls = node.__class__
        if cls is ast.Constant:
            return (node.value,)  # type: ignore[attr-defined]
        if cls is ast.Name:
            return self._fold_name(node.id, scope, local)  # type: ignore[attr-defined]
        if cls is ast.BinOp:
            return self._fold_binop(node, scope, local)  # type: ignore[arg-type]
        if cls is ast.JoinedStr:
            return self._fold_joined(node, scope, local)  # type: ignore[arg-type]
        if cls is ast.Call:
            return self._fold_call(node, scope, local)  # type: ignore[arg-type]
        if cls is ast.Subscript:
            return self._fold_subscript(node, scope, local)  # type: ignore[arg-type]
        if cls in (ast.Tuple, ast.List, ast.Set):
            return self._fold_seq(node, scope, local)  # type: ignore[arg-type]
        if cls is ast.Dict:
            return self._fold_dict(node, scope, local)  # type: ignore[arg-type]
        if cls is ast.IfExp:
            a = self.fold(node.body, scope, local)  # type: ignore[attr-defined]
            b = self.fold(node.orelse, scope, local)  # type: ignore[attr-defined]
            return _merge(a, b)
        if cls is ast.BoolOp:
            out: Cands | None = ()
            for value in node.values:  # type: ignore[attr-defined]
                out = _merge(out, self.fold(value, scope, local))
            return out or None
        if cls is ast.UnaryOp:
            fn = _UNOPS.get(node.op.__class__)  # type: ignore[attr-defined]
            inner = self.fold(node.operand, scope, local)  # type: ignore[attr-defined]
            if fn is None or inner is None:
                return None
            return _product([inner], lambda xs: fn(xs[0]))
        if cls in (ast.ListComp, ast.GeneratorExp, ast.SetComp):
            return self._fold_comp(node, scope, local)  # type: ignore[arg-type]
        if cls is ast.Attribute:
            atoms = self.res.quiet(node, scope).atoms  # type: ignore[arg-type]
            for atom in atoms:
                if atom.startswith("q:") and atom[2:] in _STR_CONSTS:
                    return (_STR_CONSTS[atom[2:]],)
            if self._is_module(node.value, scope):  # type: ignore[attr-defined]
                return None
            return self._fold_recs(self.res.attr_recs_for(node.attr), "." + node.attr)  # type: ignore[attr-defined]
        if cls is ast.Slice:
            parts: list[Cands] = []
            for part in (node.lower, node.upper, node.step):  # type: ignore[attr-defined]
                if part is None:
                    parts.append((None,))
                else:
                    got = self.fold(part, scope, local)
                    if got is None:
                        return None
                    parts.append(got)
            return _product(parts, lambda xs: slice(xs[0], xs[1], xs[2]))
        if cls is ast.Starred:
            return self.fold(node.value, scope, local)  # type: ignore[attr-defined]
        if cls is ast.NamedExpr:
            return self.fold(node.value, scope, local)  # type: ignore[attr-defined]
        return None

    def _is_module(self, node: ast.expr, scope: Scope) -> bool:
        return any(a.startswith("q:") for a in self.res.quiet(node, scope).atoms)

    def _fold_name(self, name: str, scope: Scope, local: dict[str, object] | None) -> Cands | None:
        if local is not None and name in local:
            return (local[name],)
        target = self.res.binding_scope(name, scope)
        if target is None:
            return None
        if target.is_param(name) and target.from_outside():
            return None  # a caller out of sight may pass anything: the default is one value of many
        return self._fold_recs(target.recs_of(name), name)

    def _fold_recs(self, recs: dict[tuple[int, int], Rec] | None, name: str) -> Cands | None:
        if not recs:
            return None
        key = (id(recs), name)
        if key in self._active:
            return None
        self._active.add(key)
        try:
            out: list[object] = []
            augs: list[Rec] = []
            for rec in list(recs.values()):
                kind, expr, rscope, index = rec
                if kind == "aug":
                    augs.append(rec)
                    continue
                got = self._fold_rec(kind, expr, rscope, index)
                if got is None:
                    return None
                for c in got:
                    if c not in out:
                        out.append(c)
                if len(out) > MAX_CANDS:
                    return None
            for _kind, expr, rscope, index in augs:
                if index or not isinstance(expr, ast.AugAssign) or rscope is None:
                    return None
                fn = _BINOPS.get(expr.op.__class__)
                value = self.fold(expr.value, rscope)
                if fn is None or value is None:
                    return None
                grown = _product([tuple(out), value], _applier(fn))
                if grown is None:
                    return None
                out.extend(c for c in grown if c not in out)
                if len(out) > MAX_CANDS:
                    return None
            return tuple(out)
        finally:
            self._active.discard(key)

    def _fold_rec(self, kind: str, expr: ast.AST | None, scope: Scope | None, index: int) -> Cands | None:
        if expr is None or scope is None:
            return None
        if kind == "field":  # the values come from whoever builds the object
            return None if scope.fields_from_outside() else ()
        if kind == "=":
            return self.fold(expr, scope)
        got = self.fold(expr, scope)
        if got is None:
            return None
        out: list[object] = []
        for c in got:
            items = _elements(c)
            if items is None:
                return None
            if kind == "iter":
                out.extend(i for i in items if i not in out)
            elif kind == "unpack" and index < len(items):
                if items[index] not in out:
                    out.append(items[index])
            else:
                return None
            if len(out) > MAX_CANDS:
                return None
        return tuple(out)

    def _fold_binop(self, node: ast.BinOp, scope: Scope, local: dict[str, object] | None) -> Cands | None:
        fn = _BINOPS.get(node.op.__class__)
        if fn is None:
            return None
        left = self.fold(node.left, scope, local)
        if left is None:
            return None
        right = self.fold(node.right, scope, local)
        if right is None:
            return None
        op = node.op.__class__

        def combine(xs: list[object]) -> object:
            a, b = xs
            seqs = (str, bytes, list, tuple)
            if op is ast.Mult and isinstance(b, int) and isinstance(a, seqs) and len(a) * b > MAX_LEN:
                raise ValueError
            if op is ast.Mult and isinstance(a, int) and isinstance(b, seqs) and len(b) * a > MAX_LEN:
                raise ValueError
            if op in (ast.LShift, ast.Pow) and isinstance(b, int) and abs(b) > 256:
                raise ValueError
            if op is ast.Pow and isinstance(a, int) and abs(a) > 1 << 16:
                raise ValueError
            if op is ast.Mod and isinstance(a, str) and not _guard_args([a]):
                raise ValueError
            return fn(a, b)

        return _product([left, right], combine)

    def _fold_joined(
        self, node: ast.JoinedStr, scope: Scope, local: dict[str, object] | None
    ) -> Cands | None:
        parts: list[Cands] = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append((value.value,))
                continue
            if not isinstance(value, ast.FormattedValue):
                return None
            inner = self.fold(value.value, scope, local)
            if inner is None:
                return None
            spec: Cands = ("",)
            if value.format_spec is not None:
                got = self.fold(value.format_spec, scope, local)
                if got is None:
                    return None
                spec = got
            conversion = value.conversion

            def fmt(xs: list[object], conversion: int = conversion) -> object:
                v, s = xs
                if not isinstance(s, str) or not _guard_args([s]) or _BIG_NUMBER.search(s):
                    raise ValueError
                if conversion == ord("r"):
                    v = repr(v)
                elif conversion == ord("s"):
                    v = str(v)
                elif conversion == ord("a"):
                    v = ascii(v)
                return format(v, s)

            got_part = _product([inner, spec], fmt)
            if got_part is None:
                return None
            parts.append(got_part)
        return _product(parts, lambda xs: "".join(str(x) for x in xs))

    def _fold_seq(
        self, node: ast.Tuple | ast.List | ast.Set, scope: Scope, local: dict[str, object] | None
    ) -> Cands | None:
        if len(node.elts) > MAX_ITEMS:
            return None
        items: list[object] = []
        for elt in node.elts:
            if isinstance(elt, ast.Starred):
                got = self.fold(elt.value, scope, local)
                if got is None or len(got) != 1:
                    return None
                spread = _elements(got[0])
                if spread is None:
                    return None
                items.extend(spread)
                continue
            got = self.fold(elt, scope, local)
            if got is None or len(got) != 1:
                return None
            items.append(got[0])
        if isinstance(node, ast.List):
            return (items,)
        return (tuple(items),)

    def _fold_dict(self, node: ast.Dict, scope: Scope, local: dict[str, object] | None) -> Cands | None:
        if len(node.keys) > MAX_ITEMS:
            return None
        out: dict[object, object] = {}
        for key, value in zip(node.keys, node.values, strict=False):
            if key is None:
                return None
            k = self.fold(key, scope, local)
            v = self.fold(value, scope, local)
            if k is None or v is None or len(k) != 1 or len(v) != 1:
                return None
            try:
                out[k[0]] = v[0]
            except TypeError:
                return None
        return (out,)

    def _fold_subscript(
        self, node: ast.Subscript, scope: Scope, local: dict[str, object] | None
    ) -> Cands | None:
        base = self.fold(node.value, scope, local)
        if base is None:
            return None
        index = self.fold(node.slice, scope, local)
        if index is None:
            return None
        return _product([base, index], lambda xs: operator.getitem(xs[0], xs[1]))  # type: ignore[call-overload]

    def _fold_comp(
        self,
        node: ast.ListComp | ast.GeneratorExp | ast.SetComp,
        scope: Scope,
        local: dict[str, object] | None,
    ) -> Cands | None:
        if len(node.generators) != 1:
            return None
        gen = node.generators[0]
        if gen.is_async:
            return None
        source = self.fold(gen.iter, scope, local)
        if source is None or len(source) != 1:
            return None
        items = _elements(source[0])
        if items is None:
            return None
        names: list[str] = []
        if isinstance(gen.target, ast.Name):
            names = [gen.target.id]
        elif isinstance(gen.target, ast.Tuple) and all(isinstance(t, ast.Name) for t in gen.target.elts):
            names = [t.id for t in gen.target.elts]  # type: ignore[attr-defined]
        else:
            return None
        out: list[object] = []
        for item in items:
            env = dict(local or {})
            if len(names) == 1:
                env[names[0]] = item
            else:
                parts = _elements(item)
                if parts is None or len(parts) != len(names):
                    return None
                env.update(zip(names, parts, strict=True))
            keep = True
            for cond in gen.ifs:
                got = self.fold(cond, scope, env)
                if got is None or len(got) != 1:
                    return None
                keep = keep and bool(got[0])
            if not keep:
                continue
            got = self.fold(node.elt, scope, env)
            if got is None or len(got) != 1:
                return None
            out.append(got[0])
        return (out,)

    def _qual(self, node: ast.expr, scope: Scope) -> list[str]:
        return [a[2:] for a in self.res.quiet(node, scope).atoms if a.startswith("q:")]

    def _fold_args(self, node: ast.Call, scope: Scope, local: dict[str, object] | None) -> list[Cands] | None:
        if node.keywords:
            return None
        parts: list[Cands] = []
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                return None
            got = self.fold(arg, scope, local)
            if got is None:
                return None
            parts.append(got)
        return parts

    def _fold_call(self, node: ast.Call, scope: Scope, local: dict[str, object] | None) -> Cands | None:
        func = node.func
        quals = self._qual(func, scope)
        if isinstance(func, ast.Attribute) and not any(q in _FUNCS or q == "builtins.map" for q in quals):
            method = func.attr
            if method not in _STR_METHODS:
                return None
            receiver_types = [
                _TYPE_RECEIVERS[q] for q in self._qual(func.value, scope) if q in _TYPE_RECEIVERS
            ]
            args = self._fold_args(node, scope, local)
            if args is None:
                return None
            if receiver_types:
                tp = receiver_types[0]
                return _product(args, lambda xs: _call_checked(getattr(tp, method), xs))
            receiver = self.fold(func.value, scope, local)
            if receiver is None:
                return None

            def call_method(xs: list[object]) -> object:
                recv, rest = xs[0], xs[1:]
                if not isinstance(recv, _SAFE_RECEIVERS) or isinstance(recv, bool):
                    raise TypeError
                return _call_checked(getattr(recv, method), [recv, *rest], bound=True)

            return _product([receiver, *args], call_method)
        if not quals:
            return None
        qual = quals[0]
        if qual in ("builtins.map",) and len(node.args) == 2:
            fquals = self._qual(node.args[0], scope)
            fn = _FUNCS.get(fquals[0]) if fquals else None
            seq = self.fold(node.args[1], scope, local)
            if fn is None or seq is None:
                return None
            return _product([seq], lambda xs: [fn(i) for i in _elements(xs[0]) or ()])
        fn2 = _FUNCS.get(qual)
        if fn2 is None:
            return None
        if node.args and isinstance(node.args[0], (ast.GeneratorExp, ast.ListComp)) and len(node.args) == 1:
            got = self.fold(node.args[0], scope, local)
            if got is None:
                return None
            return _product([got], lambda xs: _call_checked(fn2, xs))
        args = self._fold_args(node, scope, local)
        if args is None:
            return None
        return _product(args, lambda xs: _call_checked(fn2, xs))


def _applier(fn: Callable[[object, object], object]) -> Callable[[list[object]], object]:
    def apply(xs: list[object]) -> object:
        return fn(xs[0], xs[1])

    return apply


def _merge(a: Cands | None, b: Cands | None) -> Cands | None:
    if a is None or b is None:
        return None
    out = list(a)
    out.extend(c for c in b if c not in out)
    return tuple(out) if len(out) <= MAX_CANDS else None


def _call_checked(fn: Callable[..., object], args: list[object], bound: bool = False) -> object:
    if not _guard_args(args):
        raise ValueError("too large")
    if bound:
        return fn(*args[1:])
    return fn(*args)
