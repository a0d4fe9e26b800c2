"""`import_mlflow --with-artifacts`: copy each imported run's artifacts from its source into
Runtree's artifact store, so the run keeps working here (downloads, `runs:/` URIs, the page).

The source's files are read with mlflow's own artifact repositories, which know every store a
source may use: an mlruns folder's files, a tracking server's proxied `mlflow-artifacts:`
store, S3 and the rest. Each file is downloaded to a temporary folder and streamed into the
store through `artifact_put` (the same checks as an upload), then the run's artifact URI is
pointed at its folder here. Copying again overwrites the same files.

A logged model's files are not copied: MLflow 3 keeps them apart from its run's (under the
experiment's models/<model_id>/artifacts), and the imported model keeps the source's artifact
location, which mlflow's client reads from while that store is reachable (a folder, S3, ...;
not a source server's proxied `mlflow-artifacts:` store, which resolves against Runtree).
"""

import contextlib
import os
import posixpath
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tracker.models import Run
from tracker.services.artifacts import artifact_put


@dataclass
class ArtifactCopyCounts:
    runs: int = 0
    files: int = 0
    bytes: int = 0
    # run id -> why its artifacts could not be read from the source
    failed: dict[str, str] = field(default_factory=dict)


def own_artifact_uri(run: Run) -> str:
    return f"mlflow-artifacts:/{run.experiment_id}/{run.run_id}/artifacts"


def runs_artifacts_copy(
    *, runs: list[Run], source_uris: dict[str, str], tracking_uri: str | None, counts: ArtifactCopyCounts
) -> None:
    """Copy the artifacts of `runs` from `source_uris` (run id -> the source's artifact URI)."""
    for run in runs:
        source_uri = source_uris.get(run.run_id, "")
        # (A source's `mlflow-artifacts:/1/...` may read like a URI of this store: it is the
        # source server's, so it is copied all the same.)
        if not source_uri:
            continue
        try:
            files, size = _copy_run(run, source_uri, tracking_uri)
        except Exception as error:  # mlflow's repositories raise many types (HTTP, OS, boto)
            counts.failed[run.run_id] = " ".join(str(error).split())[:300] or type(error).__name__
            continue
        Run.objects.filter(pk=run.pk).update(artifact_uri=own_artifact_uri(run))
        counts.runs += 1
        counts.files += files
        counts.bytes += size


def _copy_run(run: Run, source_uri: str, tracking_uri: str | None) -> tuple[int, int]:
    # mlflow is a development requirement only; imported here, as the importer's readers do.
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repository = get_artifact_repository(source_uri, tracking_uri=tracking_uri)
    files = size = 0
    with tempfile.TemporaryDirectory(prefix="runtree-import-") as scratch:
        for relative in _files(repository, None):
            local = Path(repository.download_artifacts(relative, dst_path=scratch))
            length = local.stat().st_size
            with open(local, "rb") as body:
                target = f"{run.experiment_id}/{run.run_id}/artifacts/{relative}"
                artifact_put(path=target, body=body, content_length=length)
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
