"""Import MLflow history: experiments, runs and logged models from a tracking server, an MLflow
database or an mlruns folder, written into Runtree in bulk (`manage.py import_mlflow`).

A reader (one module per source: tracking_server.py, database.py, file_store.py, on source.py)
turns its source into plain dataclasses (SourceExperiment, SourceRun, SourceLoggedModel);
`experiment_import` (writer.py) writes one experiment with the write services' rules and
invariants (their checks, NaN as NULL, the latest-metric rule, materialized paths,
mlflow.rootRunId), a chunk of runs or models per statement instead of a row.

What an import keeps, and what importing again does:

- Importing again catches up: it adds what is new and overwrites nothing Runtree holds (a
  name, a tag, a status may have been edited here since). The one change to something held: a
  run (a logged model) still RUNNING (PENDING) here that has since ended (been finalized) there
  takes its status and end time.
- Experiments match by name; ids may differ. A new one takes the source's artifact location,
  lifecycle and times; one that exists keeps its own. Experiment tags not held are added.
- Runs match by run id. A new run takes everything (a deleted one its deletion time, or the
  import's when the source cannot say). A run already here keeps its name, status, lifecycle and
  tags' values; tags it does not hold are added (an mlflow.parentRunId among them links it);
  missing params are added (params are write-once: a value that
  differs keeps Runtree's, and is counted); metric points not stored yet are added, a point being
  its key, step, timestamp and value; dataset inputs (mlflow.log_input) not held yet are added,
  the dataset stored once per experiment. So importing an unchanged source again changes nothing.
  A run held in another experiment is skipped and named; an experiment this import would create
  for such runs alone is not left behind.
- Logged models (MLflow 3's log_model) match by model id, kept, so `models:/<model_id>` URIs and
  registry versions made from them resolve. A new model takes everything: name, type, status and
  its message, lifecycle, times, its source's artifact location (as a run keeps its artifact
  URI; --with-artifacts copies a model's files as it does a run's: tracker/importing/artifacts.py),
  its source run,
  tags, params and metric points (each with its run, step, timestamp and dataset). A model
  already here takes its source run when it had none; tags, params and points not held are
  added (one held in another experiment is left alone, as runs are). The
  runs' outputs (the models they produced, at a step) and model inputs link a run to a model
  Runtree holds, in any experiment: a link or point whose run or model arrives with a later
  experiment is made when the source is imported again.
- What a reader can see: an MLflow database gives everything. mlflow's client hides deleted
  models, so a tracking server's are not imported (an mlruns folder's are, read from its
  folders), and gives an mlruns folder's model metrics as the latest point per key and dataset.
  MLflow's SQL store keeps a model's NaN as 0 and ±inf as ±max float: the 0 stays, the
  infinities come back as for runs.
- mlflow.rootRunId is Runtree's to compute and runtree.* tags are Runtree's own summaries: the
  source's are left out.
- Runs may arrive in any order: an experiment's trees are linked once all of its runs exist. A
  run whose parent is not in the source stays a root marked "parent missing".
- Each experiment is written in one transaction, so a failure leaves whole experiments or none;
  a source is opened and listed before anything is written.
"""

from tracker.importing.database import DatabaseSource, database_url
from tracker.importing.file_store import FileStoreSource
from tracker.importing.source import MlflowSource, SourceError, select_experiments
from tracker.importing.tracking_server import TrackingServerSource
from tracker.importing.writer import ImportCounts, SourceExperiment, SourceLoggedModel, SourceRun, experiment_import

__all__ = [
    "DatabaseSource",
    "FileStoreSource",
    "ImportCounts",
    "MlflowSource",
    "SourceError",
    "SourceExperiment",
    "SourceLoggedModel",
    "SourceRun",
    "TrackingServerSource",
    "database_url",
    "experiment_import",
    "open_source",
    "select_experiments",
]


def open_source(location: str) -> MlflowSource:
    """The reader for `location`: a tracking server (http:// or https://), a database URL
    (sqlite:///mlflow.db, postgresql://...), or an mlruns folder (a path or a file:// URI).
    Raises SourceError, before anything is written, when it is not a readable MLflow source."""
    try:
        if location.startswith(("http://", "https://")):
            return TrackingServerSource(location)
        if location.startswith("file:") or "://" not in location:
            return FileStoreSource(location)
        return DatabaseSource(location)
    except ModuleNotFoundError as exc:
        # mlflow (with SQLAlchemy) is a development requirement of Runtree, not a runtime one.
        raise SourceError(f"Reading MLflow sources needs the mlflow package ({exc}): pip install mlflow") from None
