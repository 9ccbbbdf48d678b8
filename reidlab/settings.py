"""Typed settings: values checked and converted against a dataclass field's declared type.

Every preset, profile and training config in the lab is a dataclass. Overrides arrive from Python,
from the CLI (``--set lr=1e-3``) and from papermill (``-p flip_tta=false``) as strings or literals;
:func:`coerce_fields` turns each into the declared type or fails at once naming the field:

* ``bool`` accepts ``True``/``False`` and the strings true/false/1/0/yes/no/on/off (any case);
* ``int`` accepts integers and integral strings, never ``2.5`` or ``"abc"``;
* ``float`` accepts numbers and numeric strings;
* ``tuple[int, int]`` (and other tuples) accepts a list/tuple or a string such as ``"(256,128)"`` with
  the right length and element types; ``X | None`` accepts ``None`` / ``"none"``;
* ``str`` fields take strings; ``Any`` fields take anything (a string that reads as a Python
  literal is converted: ``"False"`` -> ``False``).
"""

from __future__ import annotations

import ast
import dataclasses
import types
import typing
from typing import Any

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


class SettingError(ValueError):
    """A setting whose value does not fit the field's declared type or range."""


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return text


def _describe(tp: Any) -> str:
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise TypeError("expected a boolean (true/false/1/0/yes/no)")


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("expected an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise TypeError("expected an integer")


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError("expected a number, got a boolean")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise TypeError("expected a number")


def coerce_value(value: Any, tp: Any) -> Any:
    """``value`` converted to type ``tp`` (a resolved annotation); ``TypeError`` says what was expected."""
    if tp is Any or tp is object:
        return _literal(value) if isinstance(value, str) else value
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
            if type(None) in args:
                return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return coerce_value(value, option)
            except TypeError as exc:
                errors.append(str(exc))
        raise TypeError(" or ".join(dict.fromkeys(errors)) or f"expected {_describe(tp)}")
    if origin is typing.Literal:
        if value in args:
            return value
        raise TypeError(f"expected one of {list(args)}")
    if tp is bool:
        return _to_bool(value)
    if tp is int:
        return _to_int(value)
    if tp is float:
        return _to_float(value)
    if tp is str:
        if isinstance(value, str):
            return value
        raise TypeError("expected a string")
    if origin is tuple:
        if isinstance(value, str):
            value = _literal(value)
        if not isinstance(value, list | tuple):
            raise TypeError(f"expected {_describe(tp)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce_value(v, args[0]) for v in value)
        if args and len(value) != len(args):
            raise TypeError(f"expected {len(args)} values {_describe(tp)}, got {len(value)}")
        return tuple(coerce_value(v, a) for v, a in zip(value, args, strict=True)) if args else tuple(value)
    if origin is dict or tp is dict:
        if isinstance(value, str):
            value = _literal(value)
        if not isinstance(value, dict):
            raise TypeError("expected a dict")
        if len(args) == 2:
            return {coerce_value(k, args[0]): coerce_value(v, args[1]) for k, v in value.items()}
        return dict(value)
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise TypeError(f"expected {_describe(tp)}")
    return value


def coerce_fields(obj: Any) -> None:
    """Convert every field of the dataclass instance ``obj`` to its declared type, in place.

    Raises :class:`SettingError` naming the class, the field, the value and the type expected.
    """
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        if not f.init or f.name not in hints:
            continue
        value = getattr(obj, f.name)
        try:
            converted = coerce_value(value, hints[f.name])
        except TypeError as exc:
            raise SettingError(
                f"{type(obj).__name__}.{f.name} = {value!r}: {exc} (declared type {_describe(hints[f.name])})"
            ) from None
        object.__setattr__(obj, f.name, converted)


def check_fields(obj: Any, overrides: dict[str, Any]) -> None:
    """Raise :class:`SettingError` when ``overrides`` names fields the dataclass ``obj`` does not have."""
    valid = {f.name for f in dataclasses.fields(obj)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise SettingError(f"unknown {type(obj).__name__} field(s) {unknown}; valid fields: {sorted(valid)}")


def replace_fields(obj: Any, **overrides: Any) -> Any:
    """``dataclasses.replace`` after checking the names; values are converted by the class's ``__post_init__``."""
    check_fields(obj, overrides)
    return dataclasses.replace(obj, **overrides)


def require(condition: bool, owner: Any, name: str, expected: str) -> None:
    """Raise :class:`SettingError` ``"<Class>.<name> = <value>: expected <expected>"`` unless ``condition``."""
    if not condition:
        raise SettingError(f"{type(owner).__name__}.{name} = {getattr(owner, name)!r}: expected {expected}")


def parse_assignments(items: list[str] | tuple[str, ...], *, option: str = "--set") -> dict[str, str]:
    """``["lr=1e-3", "amp=false"]`` -> ``{"lr": "1e-3", "amp": "false"}`` (values stay text for the fields to parse)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise SettingError(f"{option} expects name=value with a field name, got {item!r}")
        out[key.strip()] = value.strip()
    return out
