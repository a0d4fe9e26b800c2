"""The registry's rules for names, versions, aliases, stages and tags: one home each, as MLflow
states them (mlflow/utils/validation.py, mlflow/entities/model_registry/model_version_stages.py),
so a request MLflow refuses is refused here with the same error code.

Tag keys follow the tracking rule (tracker's key check); only the registry's own limits live here.
"""

import posixpath
import re

from tracker.errors import InvalidParameterValue
from tracker.services.validation import check_key as check_tracking_key

MAX_MODEL_NAME_LENGTH = 256
MAX_TAG_KEY_LENGTH = 250
MAX_TAG_VALUE_LENGTH = 100_000
MAX_ALIAS_LENGTH = 255
MAX_DESCRIPTION_LENGTH = 100_000

STAGE_NONE, STAGE_STAGING, STAGE_PRODUCTION, STAGE_ARCHIVED = "None", "Staging", "Production", "Archived"
STAGES = (STAGE_NONE, STAGE_STAGING, STAGE_PRODUCTION, STAGE_ARCHIVED)
# The stages `archive_existing_versions` may be used with, and get-latest-versions' default.
ACTIVE_STAGES = (STAGE_STAGING, STAGE_PRODUCTION)
_CANONICAL_STAGE = {stage.lower(): stage for stage in STAGES}

_ALIAS_PATTERN = re.compile(r"[\w\-]*")
# `v1`, `V12`: MLflow reads these as versions in `models:/name@v1`, so no alias may take them.
_VERSION_ALIAS_PATTERN = re.compile(r"[vV]\d+")
LATEST_ALIAS = "latest"
# The numbers a version can have: they start at 1, and the column is a PositiveIntegerField.
VERSION_NUMBERS = range(1, 2**31)


def _resolves_elsewhere(name: str) -> bool:
    """A name that, read as a path, would mean another name (MLflow stores models as folders)."""
    normalized = posixpath.normpath(name)
    return normalized != name or normalized == "." or normalized.startswith(("..", "/"))


def check_model_name(name: str | None, *, field: str = "name") -> str:
    if name is None or not name.strip():
        raise InvalidParameterValue(f"Missing value for required parameter '{field}'.")
    if "/" in name or ":" in name:
        raise InvalidParameterValue(f"Invalid model name '{name}'. Names cannot contain '/' or ':'.")
    if _resolves_elsewhere(name):
        raise InvalidParameterValue(
            f"Invalid value '{name}' for parameter '{field}': names must not resolve to other names "
            f"when treated as paths; this one would resolve to {posixpath.normpath(name)!r}."
        )
    if len(name) > MAX_MODEL_NAME_LENGTH:
        raise InvalidParameterValue(
            f"Invalid value for parameter '{field}': a model name is at most {MAX_MODEL_NAME_LENGTH} characters, "
            f"got {len(name)}."
        )
    return name


def check_version(version: str | int | None) -> int:
    """A version number as the client sends it (a string of digits). Any integer passes, as
    MLflow reads it with int(): version 0 or -1 is one that does not exist (a 404 there), not a
    malformed request."""
    if isinstance(version, int) and not isinstance(version, bool):
        number = version
    else:
        text = (version or "").strip() if isinstance(version, str) else ""
        if not text:
            raise InvalidParameterValue("Missing value for required parameter 'version'.")
        try:
            number = int(text)
        except ValueError:
            raise InvalidParameterValue(f"Parameter 'version' must be an integer, got '{version}'.") from None
    return number


def check_alias(alias: str | None) -> str:
    if not alias:
        raise InvalidParameterValue("Registered model alias name cannot be empty.")
    if not _ALIAS_PATTERN.fullmatch(alias):
        raise InvalidParameterValue(
            f"Invalid alias name: '{alias}'. Names may only contain alphanumerics, underscores (_), and dashes (-)."
        )
    if len(alias) > MAX_ALIAS_LENGTH:
        raise InvalidParameterValue(
            f"Registered model alias name exceeds the maximum length of {MAX_ALIAS_LENGTH} characters."
        )
    return alias


def check_new_alias(alias: str | None) -> str:
    """An alias to set: also not one of the names `models:/name@...` reserves."""
    alias = check_alias(alias)
    if alias.lower() == LATEST_ALIAS:
        raise InvalidParameterValue("'latest' alias name (case insensitive) is reserved.")
    if _VERSION_ALIAS_PATTERN.fullmatch(alias):
        raise InvalidParameterValue(f"Version alias name '{alias}' is reserved.")
    return alias


def canonical_stage(stage: str | None) -> str:
    """'staging' -> 'Staging'; stages are matched without regard to case, as MLflow does."""
    canonical = _CANONICAL_STAGE.get((stage or "").lower())
    if canonical is None:
        raise InvalidParameterValue(f"Invalid Model Version stage: {stage}. Value must be one of {', '.join(STAGES)}.")
    return canonical


def check_tag(key: str | None, value: str | None) -> tuple[str, str]:
    key = check_tracking_key(key, "Tag")
    value = value or ""
    if len(value) > MAX_TAG_VALUE_LENGTH:
        raise InvalidParameterValue(
            f"Tag '{key}' value is {len(value)} characters long; the limit is {MAX_TAG_VALUE_LENGTH}."
        )
    return key, value


def check_description(description: str | None) -> str:
    description = description or ""
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise InvalidParameterValue(
            f"A description is at most {MAX_DESCRIPTION_LENGTH} characters, got {len(description)}."
        )
    return description
