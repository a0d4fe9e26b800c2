"""The run page's Artifacts section: a folder's entries (the page shows the top folder; each
sub-folder is fetched when opened), a file's preview, and the few types a browser may show
inline. No database queries: the run is loaded already; the storage is read."""

import contextlib
import posixpath
from dataclasses import dataclass

from tracker.errors import InvalidParameterValue, TrackingError
from tracker.models import Run
from tracker.services import artifacts

# A preview reads at most this much of a text file, and shows at most this many lines of it.
PREVIEW_BYTES = 64 * 1024
PREVIEW_LINES = 40

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
class ArtifactItem:
    name: str
    path: str  # from the run's artifact root, as MLflow names it
    is_dir: bool
    size: int | None
    preview: str | None  # IMAGE, HTML, TEXT or None


@dataclass(frozen=True)
class ArtifactFolder:
    run_id: str
    artifact_uri: str
    path: str  # "" for the run's artifact root
    items: list[ArtifactItem]
    problem: str = ""  # why nothing can be listed (a path refused, artifacts kept elsewhere)


@dataclass(frozen=True)
class ArtifactPreview:
    item: ArtifactItem
    lines: list[str]  # TEXT: the first lines
    truncated: bool
    problem: str = ""


def run_artifact_folder(*, run: Run, path: str = "") -> ArtifactFolder:
    """The folders and files directly in `path` of `run`'s artifacts, folders first."""
    try:
        name = artifacts.run_artifact_path(run=run, path=path)
        entries = artifacts.artifact_entries(name=name)
    except TrackingError as error:
        return ArtifactFolder(run.run_id, run.artifact_uri, path, [], problem=error.message)
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
    return ArtifactFolder(run.run_id, run.artifact_uri, path.strip("/"), items)


def run_artifact_preview(*, run: Run, path: str) -> ArtifactPreview:
    """What the page shows of one file: for text, its first lines (the template escapes them)."""
    name = posixpath.basename(path.rstrip("/"))
    try:
        download = artifacts.artifact_open(path=artifacts.run_artifact_path(run=run, path=path))
    except TrackingError as error:
        item = ArtifactItem(name, path, False, None, None)
        return ArtifactPreview(item, [], False, problem=error.message)
    item = ArtifactItem(name, path, False, download.size, preview_kind(name))
    with contextlib.closing(download.file) as stored:
        head = stored.read(PREVIEW_BYTES) if item.preview == TEXT else b""
    if b"\x00" in head:
        return ArtifactPreview(item, [], False, problem="A binary file: download it to look inside.")
    lines = head.decode("utf-8", errors="replace").splitlines()
    truncated = len(lines) > PREVIEW_LINES or download.size > PREVIEW_BYTES
    return ArtifactPreview(item, lines[:PREVIEW_LINES], truncated)


def run_artifact_inline(*, run: Run, path: str) -> tuple[artifacts.ArtifactDownload, str]:
    """An image or HTML file to show in the page (an <img>, a sandboxed iframe), and the
    Content-Type it is served with; InvalidParameterValue for any other type."""
    extension = posixpath.splitext(path)[1].lower()
    if extension not in INLINE_TYPES:
        raise InvalidParameterValue(f"{path!r} is not shown inline: download it.")
    return artifacts.artifact_open(path=artifacts.run_artifact_path(run=run, path=path)), INLINE_TYPES[extension]
