"""The one converter, and the envelope.

Rules kept here:
- structuring is strict: `true` is not an integer, `"3"` is not an integer, a string is not a list;
- unknown keys are ignored (forward compatibility); a missing or mistyped field is `BadRequest`
  naming the field path;
- attributes ending in `_` (`from_`) are written without it (`from`);
- unstructuring leaves out optional fields that are `None`, keeps attribute order, and the
  envelope puts `version` and `ok` first;
- the hot verbs (`send`, `recv`, `ack_turn`) are structured by hand when every field is plainly
  right; anything else (a wrong type, a value out of range) goes through the converter, which
  gives the same instance or the error it always gave;
- an answer whose class holds no float anywhere (by its field types) is encoded by orjson
  (`codec.encode_plain`, the same bytes), the rest by the stdlib (`encode_answer`).
"""

from __future__ import annotations

import types
from collections.abc import Container
from typing import Any, Union, get_args, get_origin

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

from . import requests, responses
from .codec import WIRE_VERSION, encode_line, encode_plain
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
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
        type(None): "null",
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
            a.name: override(rename=a.name[:-1]) for a in attrs.fields(cls) if a.name.endswith("_")
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
        # A str, int or bool (or None) is its own unstructured form: no converter dispatch.
        plan = [
            (a.name, a.name[:-1] if a.name.endswith("_") else a.name, a.default is None)
            for a in attrs.fields(cls)
        ]
        unstructure = conv.unstructure

        def hook(obj: Any) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for name, key, optional in plan:
                value = getattr(obj, name)
                if value is None:
                    if not optional:
                        out[key] = None
                elif type(value) in _SCALARS:
                    out[key] = value
                else:
                    out[key] = unstructure(value)
            return out

        return hook

    conv.register_unstructure_hook_factory(attrs.has, unstructure_factory)
    return conv


_SCALARS = frozenset((str, int, bool))
converter = _make_converter()


def _float_free(tp: Any, seen: set[type]) -> bool:
    """True when values of type `tp` can hold no float (nor anything but str, int, bool, None,
    lists of those and attrs classes of those)."""
    if tp in (str, int, bool, type(None)):
        return True
    if isinstance(tp, type) and attrs.has(tp):
        if tp in seen:
            return True
        seen.add(tp)
        return all(_float_free(a.type, seen) for a in attrs.fields(tp))
    origin = get_origin(tp)
    if origin is list or origin is types.UnionType or origin is Union:
        return all(_float_free(arg, seen) for arg in get_args(tp))
    return False


def _resolved(module: Any) -> None:
    for obj in vars(module).values():
        if isinstance(obj, type) and attrs.has(obj):
            attrs.resolve_types(obj)


_resolved(responses)
_FLOAT_FREE = frozenset(
    cls
    for cls in vars(responses).values()
    if isinstance(cls, type) and attrs.has(cls) and _float_free(cls, set())
)


def _describe(err: BaseException, cmd: str) -> str:
    if isinstance(err, cattrs.ClassValidationError):
        parts = cattrs.transform_error(err, path=cmd, format_exception=_format_exc)
        return "; ".join(
            f"{_wire_path(where)}: {what}"
            for what, _, where in (p.rpartition(" @ ") for p in parts)
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


def _int(value: Any) -> bool:
    return type(value) is int and INT_MIN <= value <= INT_MAX


def _fast_send(obj: dict[str, Any]) -> Any:
    to, body, reply = obj.get("to"), obj.get("body"), obj.get("in_reply_to")
    if type(to) is str and type(body) is str and (reply is None or _int(reply)):
        return requests.Send(to=to, body=body, in_reply_to=reply)
    return None


def _fast_recv(obj: dict[str, Any]) -> Any:
    wait, max_ = obj.get("wait_seconds", 0), obj.get("max", 1)
    if _int(wait) and _int(max_):
        return requests.Recv(wait_seconds=wait, max=max_)
    return None


def _fast_ack_turn(obj: dict[str, Any]) -> Any:
    ids = obj.get("ids")
    if ids is None:
        return requests.AckTurn(ids=None)
    if type(ids) is list and all(_int(i) for i in ids):
        return requests.AckTurn(ids=list(ids))
    return None


# Hand-checked structuring of the hot verbs: an instance when every field is plainly right,
# None to let the converter decide (and word the error).
_FAST = {"send": _fast_send, "recv": _fast_recv, "ack_turn": _fast_ack_turn}


def decode_request(obj: dict[str, Any], served: Container[str] | None = None) -> tuple[str, Any]:
    """A decoded JSON object to (verb, request instance), or `BadRequest`/`UnknownCommand`."""
    cmd = request_verb(obj, served)
    fast = _FAST.get(cmd)
    if fast is not None:
        req = fast(obj)
        if req is not None:
            return cmd, req
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


def float_free_class(cls: type) -> bool:
    """True when instances of the attrs class `cls` can hold no float (by its field types)."""
    attrs.resolve_types(cls)
    return _float_free(cls, set())


def float_free(result: Any) -> bool:
    """True when `result` (an answer instance, or None) can hold no float, by its class."""
    return result is None or type(result) in _FLOAT_FREE


def encode_answer(result: Any = None) -> bytes:
    """`encode_line(ok_envelope(result))`, through orjson when `result`'s class holds no float."""
    if float_free(result):
        return encode_plain(ok_envelope(result))
    return encode_line(ok_envelope(result))


def error_envelope(err: WireError) -> dict[str, Any]:
    return {"version": WIRE_VERSION, "ok": False, "error": err.message, "code": err.code}
