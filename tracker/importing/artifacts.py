"""`import_mlflow --with-artifacts`: copy each imported run's artifacts, and each logged model's
files, from its source into Runtree's artifact store, so the run and the model keep working here
(downloads, `runs:/` and `models:/` URIs, the pages).

The source's files are read with mlflow's own artifact repositories, which know every store a
source may use: an mlruns folder's files, a tracking server's proxied `mlflow-artifacts:`
store, S3 and the rest. Each file is downloaded to a temporary folder and streamed into the
store through `artifact_put` (the same checks as an upload), then the run's artifact URI (the
model's artifact location) is pointed at its folder here. Copying again overwrites the same files.

MLflow 3 keeps a logged model's files apart from its run's, under the experiment's
models/<model_id>/artifacts; here they go to the same place in Runtree's store. Without the flag
an imported model keeps the source's artifact location, which mlflow's client reads from while
that store is reachable (a folder, S3, ...; not a source server's proxied `mlflow-artifacts:`
store, which resolves against Runtree).

A run logged through `mlflow server --serve-artifacts` has an `mlflow-artifacts:/<path>` URI,
which only that server can read: from a tracking server source it is read through the server;
from its database, only when the import is told the folder the server keeps them in (its
--artifacts-destination, import_mlflow's --artifacts-destination): `<path>` under it. Without
either, such runs are listed in `behind_server` and their artifacts stay where they are.
"""

import contextlib
import os
import posixpath
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from tracker.models import LoggedModel, Run
from tracker.services.artifacts import artifact_put


@dataclass
class ArtifactCopyCounts:
    runs: int = 0
    models: int = 0
    files: int = 0
    bytes: int = 0
    # run id -> why its artifacts could not be read from the source
    failed: dict[str, str] = field(default_factory=dict)
    # model id -> why its files could not be read from the source
    failed_models: dict[str, str] = field(default_factory=dict)
    # Runs and models whose files are behind a tracking server's proxy (`mlflow-artifacts:`
    # URIs) that this source cannot reach: not tried, reported once.
    runs_behind_server: int = 0
    models_behind_server: int = 0


@dataclass(frozen=True)
class ArtifactSource:
    """How the source's artifact URIs are read: `tracking_uri` resolves `mlflow-artifacts:`
    URIs when it is a server's; else `artifacts_destination`, the folder that server stores them in."""

    tracking_uri: str | None = None
    artifacts_destination: Path | None = None

    def resolved(self, uri: str) -> str | None:
        """The URI to read `uri` from; None when it is a proxied one that cannot be reached."""
        if not uri.startswith(_PROXIED):
            return uri
        if self.artifacts_destination is not None:
            # mlflow-artifacts:/1/<run>/artifacts (or mlflow-artifacts://host:port/1/...): the
            # path under the server's --artifacts-destination.
            path = unquote(urlparse(uri).path).lstrip("/")
            folder = self.artifacts_destination.resolve()
            resolved = (folder / path).resolve()
            # A `..` in a source's URI reads nothing outside the folder named.
            return resolved.as_uri() if resolved.is_relative_to(folder) else None
        if self.tracking_uri and self.tracking_uri.startswith(("http://", "https://")):
            return uri
        return None


_PROXIED = "mlflow-artifacts:"
# What _copied yields for files behind a tracking server that cannot be reached.
BEHIND_SERVER = "behind a tracking server"


def own_artifact_uri(run: Run) -> str:
    return f"mlflow-artifacts:/{own_run_folder(run)}"


def own_run_folder(run: Run) -> str:
    return f"{run.experiment_id}/{run.run_id}/artifacts"


def own_model_folder(model: LoggedModel) -> str:
    return f"{model.experiment_id}/models/{model.model_id}/artifacts"


def runs_artifacts_copy(
    *, runs: list[Run], source_uris: dict[str, str], source: ArtifactSource, counts: ArtifactCopyCounts
) -> None:
    """Copy the artifacts of `runs` from `source_uris` (run id -> the source's artifact URI)."""
    # (A source's `mlflow-artifacts:/1/...` may read like a URI of this store: it is the source
    # server's, so it is copied all the same.)
    wanted = [(run, source_uris.get(run.run_id, ""), own_run_folder(run)) for run in runs]
    for run, failure in _copied(wanted, source, counts):
        if failure is BEHIND_SERVER:
            counts.runs_behind_server += 1
            continue
        if failure:
            counts.failed[run.run_id] = failure
            continue
        Run.objects.filter(pk=run.pk).update(artifact_uri=own_artifact_uri(run))
        counts.runs += 1


def models_artifacts_copy(
    *, models: list[LoggedModel], source_uris: dict[str, str], source: ArtifactSource, counts: ArtifactCopyCounts
) -> None:
    """Copy the files of `models` from `source_uris` (model id -> the source's artifact location)."""
    wanted = [(model, source_uris.get(model.model_id, ""), own_model_folder(model)) for model in models]
    for model, failure in _copied(wanted, source, counts):
        if failure is BEHIND_SERVER:
            counts.models_behind_server += 1
            continue
        if failure:
            counts.failed_models[model.model_id] = failure
            continue
        LoggedModel.objects.filter(pk=model.pk).update(artifact_location=f"mlflow-artifacts:/{own_model_folder(model)}")
        counts.models += 1


def _copied(wanted: list[tuple], source: ArtifactSource, counts: ArtifactCopyCounts):
    """For each (owner, source URI, folder here) with a source URI: copy its files, count them,
    and yield (owner, "") or, when the source failed, (owner, why): BEHIND_SERVER when its
    files are behind a tracking server this source cannot reach (nothing is tried)."""
    for owner, source_uri, folder in wanted:
        if not source_uri:
            continue
        readable = source.resolved(source_uri)
        if readable is None:
            yield owner, BEHIND_SERVER
            continue
        try:
            files, size = _copy(readable, source.tracking_uri, folder)
        except Exception as error:  # mlflow's repositories raise many types (HTTP, OS, boto)
            yield owner, " ".join(str(error).split())[:300] or type(error).__name__
            continue
        counts.files += files
        counts.bytes += size
        yield owner, ""


def _copy(source_uri: str, tracking_uri: str | None, folder: str) -> tuple[int, int]:
    """Copy every file under `source_uri` into `folder` of Runtree's store; (files, bytes)."""
    # mlflow is a development requirement only; imported here, as the importer's readers do.
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repository = get_artifact_repository(source_uri, tracking_uri=tracking_uri)
    files = size = 0
    with tempfile.TemporaryDirectory(prefix="runtree-import-") as scratch:
        for relative in _files(repository, None):
            local = Path(repository.download_artifacts(relative, dst_path=scratch))
            length = local.stat().st_size
            with open(local, "rb") as body:
                artifact_put(path=f"{folder}/{relative}", body=body, content_length=length)
            with contextlib.suppress(OSError):
                os.unlink(local)  # one file at a time on disk, whatever the run's size
            files += 1
            size += length
    return files, size


def _files(repository, folder: str | None):
    for info in repository.list_artifacts(folder):
        path = info.path if folder is None or info.path.startswith(folder + "/") else posixpath.join(folder, info.path)
        if info.is_dir:
            yield from _files(repository, path)
        else:
            yield path
