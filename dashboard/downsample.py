"""Thinning a history to a chart's budget of points while keeping what a viewer must see.

MinMaxLTTB (tsdownsample, Rust) keeps each stretch's minimum and maximum before choosing the
points that hold the line's shape, so a one-step spike or a diverging loss survives where
keeping every n-th point dropped it. NaN and ±inf cannot be drawn on the line: they are set
apart as marks (drawn at the chart's edge), never dropped without a word.
"""

import math
from dataclasses import dataclass, field

import numpy as np
from tsdownsample import MinMaxLTTBDownsampler

from tracker.selectors.histories import Series

# A run page's chart is at most ~1,400 px wide: two points a pixel is all a line can show.
RUN_PAGE_BUDGET = 2000
# Marks of NaN/inf steps beyond this are thinned too (a run that went NaN for good would
# otherwise send every step); the count in the hover text stays exact.
MAX_MARKS = 500

_DOWNSAMPLER = MinMaxLTTBDownsampler()


@dataclass
class Mark:
    """A step whose value cannot be drawn on the line."""

    step: int
    timestamp: int
    kind: str  # "NaN", "+inf", "-inf"


@dataclass
class Thinned:
    steps: list[int] = field(default_factory=list)
    timestamps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)  # finite only
    smoothed: list[float] | None = None  # EMA of the full-resolution values, at the kept steps
    marks: list[Mark] = field(default_factory=list)
    nonfinite: int = 0  # NaN/inf points logged (marks may be fewer, see MAX_MARKS)
    total: int = 0  # points logged

    @property
    def shown(self) -> int:
        """Points drawn on the line (the marks are counted apart)."""
        return len(self.values)

    @property
    def drawable(self) -> int:
        """Points logged with a finite value: what the line thins."""
        return self.total - self.nonfinite

    @property
    def points(self) -> list[tuple[int, float | None]]:
        """(step, value) in step order, a NaN/inf step as None: a gap in a line of many runs."""
        gaps = [(mark.step, None) for mark in self.marks]
        return sorted([*zip(self.steps, self.values, strict=True), *gaps], key=lambda point: point[0])


def _kind(value: float | None) -> str | None:
    if value is None or math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+inf" if value > 0 else "-inf"
    return None


def ema(values: np.ndarray, weight: float) -> np.ndarray:
    """Exponential moving average with TensorBoard's debiasing (the first points are not pulled
    toward zero). `weight` 0 is the raw line; 0.99 a very smooth one."""
    if weight <= 0 or not len(values):
        return values
    out = np.empty_like(values)
    running, correction = 0.0, 1.0
    # A plain loop: 1,000,000 points take ~0.3 s; numpy has no recurrence and scipy is not a need.
    for index, value in enumerate(values.tolist()):
        running = weight * running + (1 - weight) * value
        correction *= weight
        out[index] = running / (1 - correction)
    return out


def keep_extremes(series: Series, budget: int, *, smoothing: float = 0.0) -> Thinned:
    """`series` thinned to at most `budget` line points by MinMaxLTTB, first and last kept;
    NaN/inf steps returned as marks."""
    thinned = Thinned(total=series.total or len(series.values))
    # Most histories are finite throughout: one numpy check instead of a look at each point
    # (the compare page thins 10,000 runs' histories in one request).
    y = None if None in series.values else np.asarray(series.values, dtype=np.float64)
    if y is not None and np.isfinite(y).all():
        finite_steps, finite_times, finite_values = series.steps, series.timestamps, series.values
    else:
        finite_steps, finite_times, finite_values = [], [], []
        for step, timestamp, value in zip(series.steps, series.timestamps, series.values, strict=True):
            kind = _kind(value)
            if kind:
                thinned.nonfinite += 1
                thinned.marks.append(Mark(step, timestamp, kind))
            else:
                finite_steps.append(step)
                finite_times.append(timestamp)
                finite_values.append(value)
        if len(thinned.marks) > MAX_MARKS:
            stride = math.ceil(len(thinned.marks) / MAX_MARKS)
            thinned.marks = thinned.marks[::stride]
        y = np.asarray(finite_values, dtype=np.float64)
    smoothed = ema(y, smoothing) if smoothing > 0 else None
    if len(y) > budget:
        x = np.asarray(finite_steps, dtype=np.int64)
        # MinMaxLTTB wants x strictly increasing; several points at one step (a script that
        # logs without a step) are placed by their position instead.
        if np.any(np.diff(x) <= 0):
            x = np.arange(len(y), dtype=np.int64)
        kept = np.sort(_DOWNSAMPLER.downsample(x, y, n_out=budget)).tolist()
        thinned.steps = [finite_steps[i] for i in kept]
        thinned.timestamps = [finite_times[i] for i in kept]
        thinned.values = [finite_values[i] for i in kept]
    else:
        kept = slice(None)
        thinned.steps, thinned.timestamps, thinned.values = list(finite_steps), list(finite_times), list(finite_values)
    if smoothed is not None:
        thinned.smoothed = smoothed[kept].tolist()
    return thinned
