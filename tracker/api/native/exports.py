"""`?format=csv` on the run reads: every row they hold (not a page), streamed. Runs take the
columns of tracker/selectors/export.py; a summary takes its serializer's fields, best_params spread
into a column per param as a run's params are."""

import csv
from collections.abc import Iterable, Iterator

from django.http import StreamingHttpResponse
from rest_framework.renderers import BaseRenderer

from tracker.models import RunSummary
from tracker.selectors.export import csv_number, spreadsheet_safe

SUMMARY_COLUMNS = [
    "key",
    "goal",
    "best_value",
    "best_run_id",
    "best_run_name",
    "count",
    "min_value",
    "max_value",
    "mean_value",
    "std_value",
    "computed_at",
    "stale",
]


class CSVRenderer(BaseRenderer):
    """Lets `?format=csv` through DRF's content negotiation. Each read that offers it answers with
    csv_response itself, and an error or an OPTIONS description is JSON (NativeAPIMixin), so nothing
    is left for this to render: a read that returned data here would send a Python repr as CSV."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        raise TypeError("A read that offers ?format=csv answers with csv_response().")


class _Echo:
    """A file-like object whose write() returns the line: csv.writer into a streamed response."""

    def write(self, line: str) -> str:
        return line


def csv_response(rows: Iterable[list], filename: str) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse((writer.writerow(row) for row in rows), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def summary_csv_rows(summaries: list[RunSummary], *, stale: bool) -> Iterator[list]:
    """Header, then one row per metric of a run's summary (`stale` is the run's flag)."""
    param_names = sorted({name for summary in summaries for name in summary.best_params})
    yield [*SUMMARY_COLUMNS, *(f"best_params.{name}" for name in param_names)]
    for summary in summaries:
        best_run = summary.best_run
        yield [
            spreadsheet_safe(summary.key),
            summary.goal,
            csv_number(summary.best_value),
            best_run.run_id if best_run else "",
            spreadsheet_safe(best_run.name) if best_run else "",
            summary.count,
            csv_number(summary.min_value),
            csv_number(summary.max_value),
            csv_number(summary.mean_value),
            csv_number(summary.std_value),
            summary.computed_at,
            stale,
            *(spreadsheet_safe(str(summary.best_params.get(name, ""))) for name in param_names),
        ]
