"""How the native API fails: every error is {"error_code": ..., "message": ...} in JSON, the shape of
the MLflow API and of the plumbing's own errors (tracker/web/json_errors.py), never DRF's
{"detail": ...} or {"<field>": ...}, and never rendered as CSV or as the browsable page (nor is the
OPTIONS description)."""

from rest_framework.exceptions import APIException, NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.views import exception_handler

from tracker.errors import InvalidParameterValue, TrackingError

# MLflow's error codes for what DRF refuses itself. A 405 is ENDPOINT_NOT_FOUND, as on the
# MLflow API (tracker/api/mlflow/views.py); a format this endpoint does not offer is a parameter.
ERROR_CODES = {
    400: "INVALID_PARAMETER_VALUE",
    404: "RESOURCE_DOES_NOT_EXIST",
    405: "ENDPOINT_NOT_FOUND",
    406: "INVALID_PARAMETER_VALUE",
}


class TrackingAPIError(APIException):
    """A typed refusal from the tracking domain, with its own status and MLflow error code."""

    def __init__(self, error: TrackingError):
        self.status_code = error.http_status
        super().__init__(detail={"error_code": error.error_code, "message": error.message})


def invalid_parameter(name: str, value: str, expected: str) -> TrackingAPIError:
    """A 400 that names the parameter, its value and what it takes."""
    shown = value if len(value) <= 100 else value[:100] + "..."
    return TrackingAPIError(InvalidParameterValue(f"Invalid value {shown!r} for parameter '{name}': {expected}."))


def native_exception_handler(exc, context):
    """DRF's handler (status, headers, rollback), with its body reshaped into the one error shape."""
    response = exception_handler(exc, context)
    if response is not None and not _is_error_body(response.data):
        code = ERROR_CODES.get(response.status_code, "BAD_REQUEST")
        response.data = {"error_code": code, "message": _message(response.data)}
    return response


def _is_error_body(data) -> bool:
    return isinstance(data, dict) and set(data) == {"error_code", "message"}


def _message(data) -> str:
    """DRF's detail as one sentence: {"detail": "Not found."}, or {"field": ["why", ...]}."""
    if isinstance(data, dict):
        if set(data) == {"detail"}:
            return _message(data["detail"])
        return "; ".join(f"{field}: {_message(value)}" for field, value in data.items())
    if isinstance(data, list):
        return " ".join(_message(item) for item in data)
    return str(data)


class NativeContentNegotiation(DefaultContentNegotiation):
    """A `?format=` the endpoint does not offer is a 406 that names the formats it does (DRF's own
    answer is a bare 404, as if the endpoint were not there)."""

    def filter_renderers(self, renderers, format):
        offered = [renderer for renderer in renderers if renderer.format == format]
        if not offered:
            names = ", ".join(repr(renderer.format) for renderer in renderers)
            shown = format if len(format) <= 100 else format[:100] + "..."
            raise NotAcceptable(f"Invalid value {shown!r} for parameter 'format': this endpoint offers {names}.")
        return offered


class NativeAPIMixin:
    """For every view of the native API (before DRF's view class): errors in the one shape, and
    in JSON, as is the OPTIONS description, whatever format was asked for. DRF renders both with
    what the request negotiated, and the CSV renderer or the browsable page would write them as
    no CSV and no page (tracker/api/native/exports.py)."""

    content_negotiation_class = NativeContentNegotiation

    def get_exception_handler(self):
        return native_exception_handler

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        _answer_in_json(self.request)
        return response

    def options(self, request, *args, **kwargs):
        _answer_in_json(request)
        return super().options(request, *args, **kwargs)


def _answer_in_json(request) -> None:
    request.accepted_renderer = JSONRenderer()
    request.accepted_media_type = JSONRenderer.media_type
