"""The native API's query parameters, read where they enter: a value an endpoint cannot use, or a
parameter it does not take, is a 400 that names the parameter, never silently ignored (a client
that sent `limit=0` or `filter=` on an endpoint without filters would read the wrong runs)."""

from tracker.api.native.errors import TrackingAPIError, invalid_parameter
from tracker.errors import InvalidParameterValue
from tracker.ranges import INT64_MAX, int_from_text

TRUE, FALSE = ("true", "1"), ("false", "0")


def integer_parameter(params, name: str, *, low: int, default: int) -> int:
    """An integer from `low` to 2^63-1 (past 64 bits would overflow in the database)."""
    raw = params.get(name)
    if raw is None:
        return default
    try:
        return int_from_text(raw, low=low, high=INT64_MAX)
    except ValueError:  # OutOfRange too
        raise invalid_parameter(name, raw, f"an integer from {low} to 2^63-1") from None


def boolean_parameter(params, name: str) -> bool:
    """true or false (1 or 0, any case: Python's requests sends a bool as "True"); absent is false."""
    raw = params.get(name, "false")
    if raw.lower() in TRUE:
        return True
    if raw.lower() in FALSE:
        return False
    raise invalid_parameter(name, raw, "true or false")


def choice_parameter(params, name: str, choices: tuple[str, ...]) -> str:
    """One of `choices`; absent is the first."""
    raw = params.get(name, choices[0])
    if raw not in choices:
        raise invalid_parameter(name, raw, "one of " + ", ".join(repr(choice) for choice in choices))
    return raw


def refuse_unknown(params, accepted: frozenset[str], endpoint: str) -> None:
    """A 400 for the first parameter this endpoint does not take, listing those it does."""
    unknown = sorted(set(params) - accepted - {"format"})
    if unknown:
        taken = ", ".join(sorted(accepted | {"format"}))
        raise TrackingAPIError(
            InvalidParameterValue(f"Unknown parameter '{unknown[0][:100]}' for {endpoint}: it takes {taken}.")
        )
