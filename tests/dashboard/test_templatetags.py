import math

import pytest

from dashboard.templatetags.runtree import duration, number


@pytest.mark.parametrize(
    "value, shown",
    [
        (0.147309, "0.1473"),
        (9.39196, "9.3920"),
        (10.0, "10"),
        (12345678.0, "12,345,678"),
        (1234.56789, "1,234.5679"),
        (0.00001234, "1.234e-05"),
        (math.nan, "NaN"),
        (math.inf, "∞"),
        (-math.inf, "−∞"),
        (None, ""),
    ],
)
def test_numbers_line_up_on_their_decimal_point(value, shown):
    assert number(value) == shown


@pytest.mark.parametrize(
    "ms, shown",
    [(None, ""), (850, "850 ms"), (4200, "4.2 s"), (185_000, "3m 05s"), (7_620_000, "2h 07m"), (273_600_000, "3d 4h")],
)
def test_durations_read_as_people_say_them(ms, shown):
    assert duration(ms) == shown
