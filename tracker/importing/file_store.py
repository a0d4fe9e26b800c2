"""Reading an mlruns folder, MLflow's file store."""

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from tracker.importing.client import ClientSource, source_logged_model
from tracker.importing.source import SourceError, SourceExperiment, SourceLoggedModel, SourceRun
from tracker.models import DELETED

_ALLOW_FILE_STORE = "MLFLOW_ALLOW_FILE_STORE"


class FileStoreSource(ClientSource):
    """An mlruns folder, MLflow's file store."""

    def __init__(self, location: str):
        path = Path(unquote(urlparse(location).path) if location.startswith("file:") else location).expanduser()
        if path.is_file():
            raise SourceError(
                f"{path} is a file, not an mlruns folder (an MLflow SQLite database is read as sqlite:///{path})"
            )
        if not path.is_dir():
            raise SourceError(f"No MLflow file store at {path}: no such folder")
        has_experiments = any((child / "meta.yaml").is_file() for child in path.iterdir() if child.is_dir())
        if not has_experiments and not (path / ".trash").is_dir():
            raise SourceError(f"{path} is not an MLflow file store: it has no experiment folders with a meta.yaml")
        # mlflow 3 refuses to open a file store unless asked to: it wants users to migrate off
        # it, which is what this import does. Reading changes nothing in the folder.
        self.folder = path.resolve()
        self._allow_before = os.environ.get(_ALLOW_FILE_STORE)
        os.environ[_ALLOW_FILE_STORE] = "true"
        try:
            super().__init__(path.resolve().as_uri(), str(path))
        except BaseException:
            self.close()
            raise

    def artifact_uri(self, experiment: SourceExperiment, run: SourceRun) -> str:
        return self._where_now(run.artifact_uri, Path(experiment.source_id, run.run_id, "artifacts"))

    def model_artifact_uri(self, experiment: SourceExperiment, model: SourceLoggedModel) -> str:
        return self._where_now(
            model.artifact_location, Path(experiment.source_id, "models", model.model_id, "artifacts")
        )

    def _where_now(self, recorded: str, inside: Path) -> str:
        """A run or model records where its folder was when it was logged; an mlruns folder that
        was moved (or copied from another machine) still holds the files at `inside` of itself."""
        own = self.folder / inside
        if recorded.startswith("file:") and not Path(unquote(urlparse(recorded).path)).exists() and own.is_dir():
            return own.as_uri()
        return recorded

    def _deleted_logged_models(self, experiment: SourceExperiment, listed: set[str]) -> list[SourceLoggedModel]:
        # mlflow's client hides deleted models, but its FileStore reads one given its id, and
        # each model is a folder (models/<model_id>) whose meta.yaml says whether it is deleted.
        # Not at the top: mlflow and SQLAlchemy are development requirements, imported only to read a source.
        import yaml
        from mlflow.store.tracking.file_store import FileStore

        experiment_folder = self.folder / experiment.source_id
        if not experiment_folder.is_dir():
            experiment_folder = self.folder / ".trash" / experiment.source_id
        models_folder = experiment_folder / "models"
        if not models_folder.is_dir():
            return []
        store, found = FileStore(str(self.folder)), []
        for folder in sorted(models_folder.iterdir()):
            meta = folder / "meta.yaml"
            if folder.name in listed or not meta.is_file():
                continue
            try:
                stage = (yaml.safe_load(meta.read_text()) or {}).get("lifecycle_stage")
            except yaml.YAMLError:
                continue  # a malformed model, which mlflow's own listing skips too
            if stage == DELETED:
                found.append(source_logged_model(store.get_logged_model(folder.name, allow_deleted=True), DELETED))
        return found

    def close(self) -> None:
        super().close()
        if self._allow_before is None:
            os.environ.pop(_ALLOW_FILE_STORE, None)
        else:
            os.environ[_ALLOW_FILE_STORE] = self._allow_before
