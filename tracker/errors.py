"""Typed refusals of the tracking domain. Each carries MLflow's error code and HTTP status,
so every API turns it into the same response (see tracker/api/mlflow/json.py)."""


class TrackingError(Exception):
    error_code = "INTERNAL_ERROR"
    http_status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidParameterValue(TrackingError):
    error_code = "INVALID_PARAMETER_VALUE"
    http_status = 400


class ResourceDoesNotExist(TrackingError):
    error_code = "RESOURCE_DOES_NOT_EXIST"
    http_status = 404


class ResourceAlreadyExists(TrackingError):
    error_code = "RESOURCE_ALREADY_EXISTS"
    http_status = 400


class ArtifactTooLarge(TrackingError):
    # 413 Content Too Large; MLflow has no error code for it, and its nearest is this one.
    error_code = "RESOURCE_LIMIT_EXCEEDED"
    http_status = 413


class NotImplementedByServer(TrackingError):
    """A feature this server leaves out, refused as MLflow's server refuses it (the client then
    takes its fallback: one PUT instead of a multipart upload)."""

    error_code = "NOT_IMPLEMENTED"
    http_status = 501
