"""JSON responses in MLflow's shape, for the APIs and for the plumbing (auth, error pages) that
answers API requests: {"error_code": ..., "message": ...}. The plumbing imports this module,
never the API layer."""

import orjson
from django.http import HttpResponse


def json_response(payload: dict, *, status: int = 200) -> HttpResponse:
    # orjson: a search page of 1,000 runs is about 1 MB of JSON, which json.dumps took a quarter
    # of the request to write. Metric values go through json_number, so no bare NaN (which
    # orjson would write as null) reaches it.
    return HttpResponse(orjson.dumps(payload), content_type="application/json", status=status)


def error_body(error_code: str, message: str, *, status: int) -> HttpResponse:
    return json_response({"error_code": error_code, "message": message}, status=status)
