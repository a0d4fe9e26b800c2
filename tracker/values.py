"""How a metric value is stored and read back, in one place.

NaN is stored as NULL: SQLite cannot hold a NaN (it turns it into NULL anyway), so one rule
serves both databases. A missing metric is a missing row, never a NULL value. ±Infinity is
stored as itself.

This module imports nothing from the project: anything may import it.
"""

import math
import time


def stored_value(value: float) -> float | None:
    """A logged value as the database keeps it: NaN as NULL."""
    return None if math.isnan(value) else value


def read_value(value: float | None) -> float:
    """A stored value as a float again: NULL is a NaN."""
    return math.nan if value is None else value


def number_or_none(value: float | None) -> float | None:
    """None for NULL and NaN, the value otherwise (±Infinity kept): what JSON without NaN, an
    aggregate over stored values or a chart gap wants."""
    return None if value is None or math.isnan(value) else value


def is_missing(value) -> bool:
    """No number to rank: a key never logged (None) or a NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def finite_or_none(value) -> float | None:
    """A number JSON can hold, or None (a gap) for NaN, ±Infinity and missing values."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def metric_sort_key(step: int, timestamp: int, value: float | None) -> tuple:
    """Order of "latest" among a key's values: step, then timestamp, then value (NaN lowest)."""
    is_number = value is not None and not math.isnan(value)
    return (step, timestamp, is_number, value if is_number else 0.0)


def duration_ms(start_time: int | None, end_time: int | None) -> int | None:
    """A run's duration in ms, or None while either end is unknown."""
    if start_time is None or end_time is None:
        return None
    return end_time - start_time


def now_ms() -> int:
    """Now, in epoch milliseconds: how MLflow stamps times."""
    return int(time.time() * 1000)
