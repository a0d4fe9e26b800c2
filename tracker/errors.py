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
