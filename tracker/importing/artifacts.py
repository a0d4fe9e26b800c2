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
"""

import contextlib
import os
import posixpath
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

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


def own_artifact_uri(run: Run) -> str:
    return f"mlflow-artifacts:/{own_run_folder(run)}"


def own_run_folder(run: Run) -> str:
    return f"{run.experiment_id}/{run.run_id}/artifacts"


def own_model_folder(model: LoggedModel) -> str:
    return f"{model.experiment_id}/models/{model.model_id}/artifacts"


def runs_artifacts_copy(
    *, runs: list[Run], source_uris: dict[str, str], tracking_uri: str | None, counts: ArtifactCopyCounts
) -> None:
    """Copy the artifacts of `runs` from `source_uris` (run id -> the source's artifact URI)."""
    # (A source's `mlflow-artifacts:/1/...` may read like a URI of this store: it is the source
    # server's, so it is copied all the same.)
    wanted = [(run, source_uris.get(run.run_id, ""), own_run_folder(run)) for run in runs]
    for run, failure in _copied(wanted, tracking_uri, counts):
        if failure:
            counts.failed[run.run_id] = failure
            continue
        Run.objects.filter(pk=run.pk).update(artifact_uri=own_artifact_uri(run))
        counts.runs += 1


def models_artifacts_copy(
    *, models: list[LoggedModel], source_uris: dict[str, str], tracking_uri: str | None, counts: ArtifactCopyCounts
) -> None:
    """Copy the files of `models` from `source_uris` (model id -> the source's artifact location)."""
    wanted = [(model, source_uris.get(model.model_id, ""), own_model_folder(model)) for model in models]
    for model, failure in _copied(wanted, tracking_uri, counts):
        if failure:
            counts.failed_models[model.model_id] = failure
            continue
        LoggedModel.objects.filter(pk=model.pk).update(artifact_location=f"mlflow-artifacts:/{own_model_folder(model)}")
        counts.models += 1


def _copied(wanted: list[tuple], tracking_uri: str | None, counts: ArtifactCopyCounts):
    """For each (owner, source URI, folder here) with a source URI: copy its files, count them,
    and yield (owner, "") or, when the source failed, (owner, why)."""
    for owner, source_uri, folder in wanted:
        if not source_uri:
            continue
        try:
            files, size = _copy(source_uri, tracking_uri, folder)
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
