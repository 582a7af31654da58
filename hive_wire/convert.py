"""The one converter, and the envelope.

Rules kept here:
- structuring is strict: `true` is not an integer, `"3"` is not an integer, a string is not a list;
- unknown keys are ignored (forward compatibility); a missing or mistyped field is `BadRequest`
  naming the field path;
- attributes ending in `_` (`from_`) are written without it (`from`);
- unstructuring leaves out optional fields that are `None`, keeps attribute order, and the
  envelope puts `version` and `ok` first.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any, get_args, get_origin

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

from . import requests
from .codec import WIRE_VERSION
from .errors import BadRequest, UnknownCommand, WireError

INT_MIN, INT_MAX = -(2**63), 2**63 - 1


def _strict(kind: type, label: str) -> Any:
    def hook(value: Any, _: Any) -> Any:
        if type(value) is not kind:
            raise TypeError(f"expected {label}, got {_json_type(value)}")
        return value

    return hook


def _json_type(value: Any) -> str:
    return {
        bool: "a boolean", int: "an integer", float: "a number", str: "a string",
        list: "a list", dict: "an object", type(None): "null",
    }.get(type(value), type(value).__name__)


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(omit_if_default=True, forbid_extra_keys=False)
    def int_hook(value: Any, _: Any) -> int:
        if type(value) is not int:
            raise TypeError(f"expected an integer, got {_json_type(value)}")
        if not INT_MIN <= value <= INT_MAX:
            raise ValueError("integer out of the 64-bit range")
        return value

    conv.register_structure_hook(int, int_hook)
    conv.register_structure_hook(str, _strict(str, "a string"))
    conv.register_structure_hook(bool, _strict(bool, "a boolean"))

    def float_hook(value: Any, _: Any) -> float:
        if type(value) not in (int, float):
            raise TypeError(f"expected a number, got {_json_type(value)}")
        return float(value)

    conv.register_structure_hook(float, float_hook)

    def list_factory(tp: Any) -> Any:
        (item,) = get_args(tp) or (Any,)

        def hook(value: Any, _: Any) -> list[Any]:
            if type(value) is not list:
                raise TypeError(f"expected a list, got {_json_type(value)}")
            out = []
            for i, v in enumerate(value):
                try:
                    out.append(conv.structure(v, item))
                except (TypeError, ValueError) as e:
                    raise TypeError(f"item {i}: {e}") from None
            return out

        return hook

    conv.register_structure_hook_factory(lambda t: get_origin(t) is list, list_factory)  # type: ignore[comparison-overlap]

    def dict_hook(value: Any, _: Any) -> dict[str, Any]:
        if type(value) is not dict:
            raise TypeError(f"expected an object, got {_json_type(value)}")
        return value

    conv.register_structure_hook_factory(lambda t: get_origin(t) is dict, lambda _: dict_hook)  # type: ignore[comparison-overlap]

    def renames(cls: type) -> dict[str, Any]:
        return {
            a.name: override(rename=a.name[:-1])
            for a in attrs.fields(cls)
            if a.name.endswith("_")
        }

    def attrs_factory(cls: type) -> Any:
        inner: Any = make_dict_structure_fn(cls, conv, **renames(cls))

        def hook(value: Any, tp: Any) -> Any:
            if type(value) is not dict:
                raise TypeError(f"expected an object, got {_json_type(value)}")
            return inner(value, tp)

        return hook

    conv.register_structure_hook_factory(attrs.has, attrs_factory)
    def unstructure_factory(cls: type) -> Any:
        # Attribute order is key order; a field is left out only when it is None and its
        # default is None (cattrs' own omit-if-default would reorder and drop other defaults).
        plan = [(a.name, a.name[:-1] if a.name.endswith("_") else a.name, a.default is None)
                for a in attrs.fields(cls)]

        def hook(obj: Any) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for name, key, optional in plan:
                value = getattr(obj, name)
                if value is None and optional:
                    continue
                out[key] = conv.unstructure(value)
            return out

        return hook

    conv.register_unstructure_hook_factory(attrs.has, unstructure_factory)
    return conv


converter = _make_converter()


def _describe(err: BaseException, cmd: str) -> str:
    if isinstance(err, cattrs.ClassValidationError):
        parts = cattrs.transform_error(err, path=cmd, format_exception=_format_exc)
        return "; ".join(
            f"{_wire_path(where)}: {what}" for what, _, where in (p.rpartition(" @ ") for p in parts)
        )
    return f"{cmd}: {err}"


def _wire_path(path: str) -> str:
    """`wake.from_` → `wake.from`: the path as the client wrote it."""
    return ".".join(p[:-1] if p.endswith("_") else p for p in path.split("."))


def _format_exc(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, KeyError):
        return "required field missing"
    return str(exc)


def request_verb(obj: dict[str, Any], served: Container[str] | None = None) -> str:
    """The verb of a decoded request, or `BadRequest`/`UnknownCommand` (also for a verb not in
    `served`, before its fields are looked at)."""
    cmd = obj.get("cmd")
    if not isinstance(cmd, str):
        raise BadRequest("request needs a string field `cmd` naming the verb")
    if cmd not in requests.VERBS or (served is not None and cmd not in served):
        where = "" if served is None or cmd not in requests.VERBS else " on this socket"
        raise UnknownCommand(f"unknown command {cmd[:64]!r}{where}")
    return cmd


def decode_request(
    obj: dict[str, Any], served: Container[str] | None = None
) -> tuple[str, Any]:
    """A decoded JSON object to (verb, request instance), or `BadRequest`/`UnknownCommand`."""
    cmd = request_verb(obj, served)
    cls = requests.VERBS[cmd]
    try:
        return cmd, converter.structure(obj, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError, KeyError) as e:
        raise BadRequest(_describe(e, cmd)) from None


def encode_request(req: Any) -> dict[str, Any]:
    """A request instance to its wire object (`cmd` first)."""
    return {"cmd": requests.CMD_OF[type(req)], **converter.unstructure(req)}


def ok_envelope(result: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"version": WIRE_VERSION, "ok": True}
    if result is not None:
        out.update(converter.unstructure(result))
    return out


def error_envelope(err: WireError) -> dict[str, Any]:
    return {"version": WIRE_VERSION, "ok": False, "error": err.message, "code": err.code}
