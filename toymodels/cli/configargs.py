"""Command-line flags generated from frozen config dataclasses ("the config is the CLI").

Every field of a config dataclass becomes one flag: its name with dashes (``batch_size`` ->
``--batch-size``), its type (int, float, str, bool, ``X | None``, tuples), its default, and as
help text the docstring written directly under the field. Adding an option to a command is
therefore one field with its docstring::

    @dataclass(frozen=True)
    class Settings:
        steps: int = 100
        \"\"\"Optimizer steps.\"\"\"

    add_arguments(parser, Settings)              # --steps STEPS   Optimizer steps. (default 100)
    build(Settings, parser.parse_args())         # Settings(steps=...), validated by the class

How a field maps to a flag (first match wins):

- ``field(metadata={"flag": "--name"})`` or ``flags={"field": "--name"}`` at the call site fix
  the flag name; ``aliases`` add more names for the same field.
- ``choices`` come from ``metadata={"choices": ...}``, the call site, or the constant passed to
  ``check_choice("field", self.field, CONSTANT)`` in the class's ``__post_init__``.
- ``bool`` fields: default False -> ``--flag`` (store_true); default True -> ``--flag`` /
  ``--no-flag``; a call-site ``negate={"tied_init": "--untied-init"}`` adds a store_false flag.
- ``tuple[T, ...]`` (or ``T | tuple[T, ...]``, a per-instance sweep field) take ``nargs="+"``;
  ``tuple[T, T]`` take exactly two values.

This module only reads the dataclasses; it never imports the training code, so the core
does not depend on the command line.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import sys
import textwrap
import types
import typing
from typing import Any, Mapping, Sequence

__all__ = ["FieldSpec", "add_arguments", "build", "field_docs", "field_specs", "values"]

_MISSING = dataclasses.MISSING


# ---------------------------------------------------------------------- docstrings
@functools.lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """The attribute docstrings of a dataclass: for each field, the string literal directly
    under its annotated assignment (inherited ones included), whitespace-normalised."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or not dataclasses.is_dataclass(klass):
            continue
        try:
            src = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):  # defined interactively: no source, no help text
            continue
        tree = ast.parse(src)
        node = next((n for n in tree.body if isinstance(n, ast.ClassDef)), None)
        if node is None:
            continue
        body = node.body
        for a, b in zip(body, body[1:]):
            if (isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name)
                    and isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant)
                    and isinstance(b.value.value, str)):
                docs[a.target.id] = " ".join(inspect.cleandoc(b.value.value).split())
    return docs


@functools.lru_cache(maxsize=None)
def _validator_choices(cls: type) -> dict[str, Any]:
    """Choices named in ``check_choice("field", value, CONSTANT)`` calls of ``__post_init__``:
    the constant is looked up in the class's module (a zero-argument call is called)."""
    out: dict[str, Any] = {}
    post = getattr(cls, "__post_init__", None)
    if post is None:
        return out
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(post)))
    except (OSError, TypeError, SyntaxError):
        return out
    env = vars(sys.modules[cls.__module__])
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "check_choice" and len(node.args) >= 3):
            continue
        name, expr = node.args[0], node.args[2]
        if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
            continue
        if isinstance(expr, ast.Name) and expr.id in env:
            out[name.value] = tuple(env[expr.id])
        elif isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and not expr.args and expr.func.id in env:
            out[name.value] = tuple(env[expr.func.id]())
    return out


# ---------------------------------------------------------------------- types
def _strip_optional(tp: Any) -> tuple[Any, bool]:
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = tuple(a for a in args if a is not type(None))
        return (rest[0] if len(rest) == 1 else typing.Union[rest]), True
    return tp, False


def _scalar(tp: Any) -> Any:
    return tp if tp in (int, float, str, bool) else None


def _shape(tp: Any) -> tuple[Any, Any]:
    """(element type, nargs) of a field type: nargs None for a scalar, "+" for a sweep or a
    variable tuple, an int for a fixed-length tuple."""
    tp, _ = _strip_optional(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):  # T | tuple[T, ...]: a per-instance sweep
        tuples = [a for a in args if typing.get_origin(a) is tuple]
        scalars = [a for a in args if _scalar(a)]
        if tuples and scalars:
            return scalars[0], "+"
    if origin in (tuple, list, Sequence):
        if len(args) == 2 and args[1] is Ellipsis or origin is not tuple:
            return args[0] if args else str, "+"
        if args and all(a == args[0] for a in args):
            return args[0], len(args)
    if isinstance(tp, type) and issubclass(tp, (str, int, float)) and not issubclass(tp, bool):
        return tp, None
    if tp is bool:
        return bool, None
    return str, None


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """How one dataclass field appears on the command line."""

    name: str
    flag: str
    dest: str
    type: Any
    nargs: Any
    optional: bool
    default: Any
    choices: tuple | None
    help: str


def _resolved_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # unresolvable forward refs: fall back to the raw annotations
        return {f.name: f.type for f in dataclasses.fields(cls)}


def field_specs(
    cls: type,
    *,
    flags: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
    choices: Mapping[str, Sequence[Any]] | None = None,
    helps: Mapping[str, str] | None = None,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    prefix: str = "",
    dest_from_flag: bool = False,
) -> list[FieldSpec]:
    """The :class:`FieldSpec` of each (selected) field of ``cls``; call-site mappings win
    over field metadata, which wins over what the class itself says."""
    flags, defaults, choices, helps = flags or {}, defaults or {}, choices or {}, helps or {}
    docs, hints, vchoices = field_docs(cls), _resolved_hints(cls), _validator_choices(cls)
    wanted = list(include) if include is not None else [f.name for f in dataclasses.fields(cls)]
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    out = []
    for name in wanted:
        if name in exclude:
            continue
        f = by_name[name]
        if not f.init:
            continue
        tp, nargs = _shape(hints.get(name, str))
        _, optional = _strip_optional(hints.get(name, str))
        if name in defaults:
            default = defaults[name]
        elif f.default is not _MISSING:
            default = f.default
        elif f.default_factory is not _MISSING:
            default = f.default_factory()
        else:
            default = None
        flag = flags.get(name) or f.metadata.get("flag") or "--" + prefix + name.replace("_", "-")
        ch = choices.get(name) or f.metadata.get("choices") or vchoices.get(name)
        dest = flag.lstrip("-").replace("-", "_") if dest_from_flag else prefix.replace("-", "_") + name
        out.append(FieldSpec(
            name=name, flag=flag, dest=dest, type=tp, nargs=nargs, optional=optional,
            default=default, choices=tuple(ch) if ch else None, help=helps.get(name) or docs.get(name, ""),
        ))
    return out


def _fmt_default(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (tuple, list)):
        return " ".join(_fmt_default(x) for x in v)
    return str(v)


def _parse_bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    flags: Mapping[str, str] | None = None,
    aliases: Mapping[str, Sequence[str]] | None = None,
    negate: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
    choices: Mapping[str, Sequence[Any]] | None = None,
    helps: Mapping[str, str] | None = None,
    metavars: Mapping[str, Any] | None = None,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    prefix: str = "",
    dest_from_flag: bool = False,
    skip_existing: bool = False,
) -> list[FieldSpec]:
    """Add one flag per field of the dataclass ``cls`` to ``parser`` (or an argument group).

    ``flags`` renames, ``aliases`` adds names, ``negate`` adds a store_false flag for a
    default-True bool (``{"tied_init": "--untied-init"}``), ``defaults`` overrides a field's
    default for this command (``None`` meaning "decided later" is allowed), ``choices`` /
    ``helps`` / ``metavars`` override what the class says, ``include``/``exclude`` select
    fields; ``dest_from_flag`` names the namespace attribute after the flag rather than the
    field (options of several classes in one parser). With ``skip_existing`` a flag already defined is skipped (two classes sharing
    an option). Returns the specs added; :func:`build` turns the parsed namespace back into
    an instance.
    """
    aliases, negate, metavars = aliases or {}, negate or {}, metavars or {}
    specs = field_specs(cls, flags=flags, defaults=defaults, choices=choices, helps=helps,
                        include=include, exclude=exclude, prefix=prefix, dest_from_flag=dest_from_flag)
    existing = set()
    container = getattr(parser, "_actions", None)
    if container is not None:
        existing = {s for a in container for s in a.option_strings}
    added = []
    for s in specs:
        names = [s.flag, *aliases.get(s.name, ())]
        if skip_existing and any(n in existing for n in names):
            continue
        help_text = s.help.replace("%", "%%")
        kw: dict[str, Any] = {"dest": s.dest, "default": s.default}
        if s.type is bool and s.nargs is None:
            if s.name in negate:
                kw["action"] = "store_true"
                parser.add_argument(*names, **kw, help=help_text)
                parser.add_argument(negate[s.name], dest=s.dest, action="store_false",
                                    help=f"the opposite of {s.flag}")
                added.append(s)
                continue
            kw["action"] = "store_true" if not s.default else argparse.BooleanOptionalAction
        else:
            kw["type"] = _parse_bool if s.type is bool else s.type
            if s.nargs is not None:
                kw["nargs"] = s.nargs
            if s.choices:
                kw["choices"] = s.choices
            if s.name in metavars or not s.choices:  # argparse shows {a,b,c} for choices
                kw["metavar"] = metavars.get(s.name) or s.flag.lstrip("-").replace("-", "_").upper()
            if s.default is not None and "default" not in s.help.lower():
                help_text += f" (default {_fmt_default(s.default).replace('%', '%%')})"
        parser.add_argument(*names, **kw, help=help_text.strip())
        existing.update(names)
        added.append(s)
    return added


def values(cls: type, namespace: argparse.Namespace, *, prefix: str = "") -> dict[str, Any]:
    """The field values of ``cls`` found in ``namespace`` (lists become tuples)."""
    out = {}
    for f in dataclasses.fields(cls):
        dest = prefix.replace("-", "_") + f.name
        if f.init and hasattr(namespace, dest):
            v = getattr(namespace, dest)
            out[f.name] = tuple(v) if isinstance(v, list) else v
    return out


def build(cls: type, namespace: argparse.Namespace, *, prefix: str = "", **overrides: Any) -> Any:
    """An instance of ``cls`` from the parsed flags (``overrides`` win); the class validates
    it at construction, so a bad value raises ``ValueError`` naming the field. Fields with no
    flag in the namespace keep their defaults, and a ``None`` from a flag whose default was
    decided later falls back to the field's own default."""
    kw = values(cls, namespace, prefix=prefix)
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    hints = _resolved_hints(cls)
    for name, v in list(kw.items()):
        if v is None and not _strip_optional(hints.get(name, str))[1] and by_name[name].default is not _MISSING:
            del kw[name]
    kw.update(overrides)
    return cls(**kw)
