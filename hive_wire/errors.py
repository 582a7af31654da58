"""The wire's error codes, as one small exception hierarchy.

Rules kept here:
- every error that can reach a client is a `WireError` carrying its wire `code`;
- the daemon raises these and the connection loop turns them into envelopes in one place;
- the client raises the same classes when an answer says `ok: false`, so callers on both sides
  catch the same names.
"""

from __future__ import annotations


class WireError(Exception):
    """An error with a wire code. `str(err)` is the sentence a human reads."""

    code = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadJson(WireError):
    code = "bad_json"


class LineTooLong(WireError):
    code = "line_too_long"


class BadRequest(WireError):
    code = "bad_request"


class UnknownCommand(WireError):
    code = "unknown_command"


class NotFound(WireError):
    code = "not_found"


class Conflict(WireError):
    code = "conflict"


class Forbidden(WireError):
    code = "forbidden"


class TooLarge(WireError):
    code = "too_large"


class Limit(WireError):
    code = "limit"


class Unavailable(WireError):
    code = "unavailable"


class Internal(WireError):
    code = "internal"


CODES: dict[str, type[WireError]] = {
    cls.code: cls
    for cls in (
        BadJson,
        LineTooLong,
        BadRequest,
        UnknownCommand,
        NotFound,
        Conflict,
        Forbidden,
        TooLarge,
        Limit,
        Unavailable,
        Internal,
    )
}


class RemoteVersionError(Exception):
    """The daemon answered with a wire version newer than this client understands."""


def error_for_code(code: str | None, message: str) -> WireError:
    """The exception class for a code read off the wire (unknown codes become `WireError`)."""
    cls = CODES.get(code or "", WireError)
    err = cls(message)
    if cls is WireError:
        err.code = code or "unknown"
    return err
