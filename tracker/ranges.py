"""Numbers where they enter: one home for the ranges every API and page checks.

Python's int() refuses a decimal string of more than 4,300 digits with a ValueError that no
caller expects (it surfaced as a 500 in a dozen fields), and a number past 64 bits overflows
in the database. So text is read here, of any length, and checked against its field's range.
"""

import re

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# The epoch milliseconds a date can have (0001-01-01 to 9999-12-31, UTC, as Python's datetime
# and the pages can show them). A time outside is a mistake, e.g. nanoseconds sent for ms.
EPOCH_MS_MIN = -62_135_596_800_000
EPOCH_MS_MAX = 253_402_300_799_999

_DECIMAL_INTEGER = re.compile(r"(-?)0*(\d+)", re.ASCII)
# More significant digits than this is past int64, whatever they are.
_INT64_DIGITS = 19


class OutOfRange(ValueError):
    """A well-formed number outside its field's range."""


def int_from_text(text: str, *, low: int = INT64_MIN, high: int = INT64_MAX) -> int:
    """The integer a decimal string spells, within [low, high]. ValueError if it spells none,
    OutOfRange if it is outside, never int()'s digit-limit error."""
    match = _DECIMAL_INTEGER.fullmatch(text)
    if match is None:
        raise ValueError(f"{text[:100]!r} is not an integer")
    sign, digits = match.groups()
    if len(digits) > _INT64_DIGITS:
        raise OutOfRange(f"a {len(digits)}-digit number is out of range")
    return in_range(int(sign + digits), low=low, high=high)


def in_range(value: int, *, low: int = INT64_MIN, high: int = INT64_MAX) -> int:
    if not low <= value <= high:
        raise OutOfRange(f"{value} is out of range [{low}, {high}]")
    return value


def is_epoch_ms(value: int | None) -> bool:
    """Whether `value` is a time the pages can show as a date (None: no time, which is fine)."""
    return value is None or EPOCH_MS_MIN <= value <= EPOCH_MS_MAX
