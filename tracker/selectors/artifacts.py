"""The Artifacts sections of the run page and the logged model page: a folder's entries (the
page shows the top folder; each sub-folder is fetched when opened), a file's preview, and the
few types a browser may show inline. No database queries: the run or model is loaded already;
the storage is read."""

import contextlib
import csv
import io
import json
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice

from tracker.errors import InvalidParameterValue, TrackingError
from tracker.models import LoggedModel, Run
from tracker.services import artifacts

# A preview reads at most this much of a text file, and shows at most this many lines of it
# (or rows of a table).
PREVIEW_BYTES = 64 * 1024
PREVIEW_LINES = 40
# A JSON file up to this size is read whole, so that a table mlflow.log_table wrote
# ({"columns": [...], "data": [[...], ...]}) shows as one; a larger one previews as text.
TABLE_JSON_BYTES = 1024 * 1024
# CSV and TSV files preview as tables, by their delimiter.
DELIMITERS = {".csv": ",", ".tsv": "\t"}

IMAGE = "image"  # shown as <img> from the inline URL
HTML = "html"  # shown in a sandboxed iframe from the inline URL
TEXT = "text"  # the first lines, escaped, in the page

# The only types the inline URL serves, by extension: raster images and SVG (for <img>, where
# no script in it runs) and HTML (for the sandboxed iframe). Anything else is a download.
INLINE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
}
TEXT_EXTENSIONS = frozenset(
    {".txt", ".log", ".json", ".yaml", ".yml", ".csv", ".tsv", ".md", ".py", ".toml", ".ini", ".cfg", ".xml"}
)
# Files MLflow writes without an extension that are text (a model's MLmodel, its requirements).
TEXT_NAMES = frozenset({"MLmodel", "requirements.txt", "conda.yaml", "python_env.yaml", "LICENSE"})


def preview_kind(file_name: str) -> str | None:
    extension = posixpath.splitext(file_name)[1].lower()
    if extension in (".html", ".htm"):
        return HTML
    if extension in INLINE_TYPES:
        return IMAGE
    if extension in TEXT_EXTENSIONS or file_name in TEXT_NAMES:
        return TEXT
    return None


@dataclass(frozen=True)
class ArtifactOwner:
    """Whose files are read: a run's artifacts or a logged model's."""

    artifact_uri: str
    # The storage name of a path inside the owner's folder; TrackingError for one outside it.
    storage_name: Callable[[str | None], str]
    download_prefix: str  # a file's download URL is this followed by its path, URL-encoded


def run_artifacts(run: Run) -> ArtifactOwner:
    return ArtifactOwner(
        run.artifact_uri,
        lambda path: artifacts.run_artifact_path(run=run, path=path),
        f"/get-artifact?run_id={run.run_id}&path=",
    )


def model_artifacts(model: LoggedModel) -> ArtifactOwner:
    def storage_name(path: str | None) -> str:
        return artifacts.logged_model_artifact_path(model=model, path=path)

    try:
        prefix = f"/api/2.0/mlflow-artifacts/artifacts/{storage_name(None)}/"
    except TrackingError:
        prefix = ""  # kept outside this server's store: nothing is listed, so nothing links
    return ArtifactOwner(model.artifact_location, storage_name, prefix)


@dataclass(frozen=True)
class ArtifactItem:
    name: str
    path: str  # from the run's artifact root, as MLflow names it
    is_dir: bool
    size: int | None
    preview: str | None  # IMAGE, HTML, TEXT or None


@dataclass(frozen=True)
class ArtifactFolder:
    download_prefix: str  # as its owner's
    artifact_uri: str
    path: str  # "" for the owner's artifact root
    items: list[ArtifactItem]
    problem: str = ""  # why nothing can be listed (a path refused, artifacts kept elsewhere)


@dataclass(frozen=True)
class ArtifactTable:
    columns: list[str]
    rows: list[list[str]]  # the first PREVIEW_LINES, each cell as text
    total_rows: int | None  # None when only the file's start was read


@dataclass(frozen=True)
class ArtifactPreview:
    item: ArtifactItem
    lines: list[str]  # TEXT: the first lines
    truncated: bool
    problem: str = ""
    table: ArtifactTable | None = None  # a CSV, TSV or logged table, shown as rows and columns


def artifact_folder(owner: ArtifactOwner, path: str = "") -> ArtifactFolder:
    """The folders and files directly in `path` of the owner's artifacts, folders first."""
    try:
        entries = artifacts.artifact_entries(name=owner.storage_name(path))
    except TrackingError as error:
        return ArtifactFolder(owner.download_prefix, owner.artifact_uri, path, [], problem=error.message)
    prefix = f"{path.strip('/')}/" if path.strip("/") else ""
    items = [
        ArtifactItem(
            entry.path,
            prefix + entry.path,
            entry.is_dir,
            entry.file_size,
            None if entry.is_dir else preview_kind(entry.path),
        )
        for entry in entries
    ]
    return ArtifactFolder(owner.download_prefix, owner.artifact_uri, path.strip("/"), items)


def artifact_preview(owner: ArtifactOwner, path: str) -> ArtifactPreview:
    """What the page shows of one file: for text, its first lines (the template escapes them)."""
    name = posixpath.basename(path.rstrip("/"))
    try:
        download = artifacts.artifact_open(path=owner.storage_name(path))
    except TrackingError as error:
        item = ArtifactItem(name, path, False, None, None)
        return ArtifactPreview(item, [], False, problem=error.message)
    item = ArtifactItem(name, path, False, download.size, preview_kind(name))
    extension = posixpath.splitext(name)[1].lower()
    whole_json = extension == ".json" and download.size <= TABLE_JSON_BYTES
    with contextlib.closing(download.file) as stored:
        head = stored.read(TABLE_JSON_BYTES if whole_json else PREVIEW_BYTES) if item.preview == TEXT else b""
    if b"\x00" in head:
        return ArtifactPreview(item, [], False, problem="A binary file: download it to look inside.")
    text = head.decode("utf-8", errors="replace")
    read_whole = download.size <= len(head)
    table = _logged_table(text) if whole_json else None
    if extension in DELIMITERS:
        table = _delimited_table(text, DELIMITERS[extension], read_whole=read_whole)
    if table is not None:
        return ArtifactPreview(item, [], table.total_rows is None or table.total_rows > PREVIEW_LINES, table=table)
    lines = text[:PREVIEW_BYTES].splitlines()
    truncated = len(lines) > PREVIEW_LINES or download.size > PREVIEW_BYTES
    return ArtifactPreview(item, lines[:PREVIEW_LINES], truncated)


def _logged_table(text: str) -> ArtifactTable | None:
    """A table as mlflow.log_table writes it (pandas' "split" layout: column names and rows of
    values), or None for any other JSON."""
    try:
        found = json.loads(text)
    except ValueError:
        return None
    if not isinstance(found, dict) or not isinstance(found.get("columns"), list):
        return None
    rows = found.get("data")
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        return None
    shown = [[_cell_text(value) for value in row] for row in rows[:PREVIEW_LINES]]
    return ArtifactTable([_cell_text(column) for column in found["columns"]], shown, len(rows))


def _cell_text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _delimited_table(text: str, delimiter: str, *, read_whole: bool) -> ArtifactTable | None:
    """The first row of a CSV or TSV file as its header and the next PREVIEW_LINES as rows; None
    if it does not parse. When only the file's start was read, its last line may be cut: it is
    dropped, and the total is not known."""
    lines = text.splitlines(keepends=True)
    if not read_whole and len(lines) > 1:
        lines = lines[:-1]
    try:
        reader = csv.reader(io.StringIO("".join(lines)), delimiter=delimiter)
        header = next(reader, None)
        rows = list(islice(reader, PREVIEW_LINES))
        remaining = sum(1 for _ in reader) if read_whole else None
    except csv.Error:
        return None
    if header is None:
        return None
    return ArtifactTable(header, rows, None if remaining is None else len(rows) + remaining)


def artifact_inline(owner: ArtifactOwner, path: str) -> tuple[artifacts.ArtifactDownload, str]:
    """An image or HTML file to show in the page (an <img>, a sandboxed iframe), and the
    Content-Type it is served with; InvalidParameterValue for any other type."""
    extension = posixpath.splitext(path)[1].lower()
    if extension not in INLINE_TYPES:
        raise InvalidParameterValue(f"{path!r} is not shown inline: download it.")
    return artifacts.artifact_open(path=owner.storage_name(path)), INLINE_TYPES[extension]
