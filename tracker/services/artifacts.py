"""Artifacts: MLflow's proxied artifact store, over Django's storage API (`STORAGES["artifacts"]`).

Every artifact is stored under a run's folder, `<experiment_id>/<run_id>/artifacts/...`, or a
logged model's, `<experiment_id>/models/<model_id>/artifacts/...`; the client names that folder
by its `mlflow-artifacts:` URI, which an experiment's own location can place elsewhere
(`team-a/<run_id>/artifacts`). `artifact_location` is the one place a path is checked: it must
stay inside the folder of a run (or logged model) that exists, or nothing is read or written.

Uploads stream: the body is copied in chunks into a temporary file, counted against
RUNTREE_MAX_ARTIFACT_BYTES, and handed to the storage only once it is complete, so a client
gone mid-body, or a body over the limit, leaves nothing behind. On the local folder the
temporary file sits beside the artifacts and the storage moves it into place (one rename); on
object storage it is uploaded from there.
"""

import contextlib
import os
import posixpath
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import unquote

from botocore.exceptions import ClientError
from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage, storages
from storages.backends.s3 import S3Storage

from tracker.errors import ArtifactTooLarge, InvalidParameterValue, ResourceDoesNotExist
from tracker.models import LoggedModel, Run

# Copying in 1 MiB pieces keeps an upload's memory flat whatever its size.
CHUNK_BYTES = 1024 * 1024
# Where the local folder keeps uploads still arriving: beside the artifacts (one filesystem, so
# the final move is a rename), and never a path an artifact can have (those start with a digit).
INCOMING_FOLDER = ".incoming"

_RUN_ID = re.compile(r"[0-9a-f]{32}")
# MLflow's logged-model ids: "m-" and 32 hex digits (mlflow/store/tracking/sqlalchemy_store.py).
_MODEL_ID = re.compile(r"m-[0-9a-f]{32}")
_EXPERIMENT_ID = re.compile(r"[0-9]{1,18}")
# Percent-decoding is repeated until nothing changes, so `%252e%252e` cannot smuggle a `..`
# past the check; more rounds than this is an attack, not a file name.
_MAX_DECODE_ROUNDS = 5
# A longer name than a file system takes (255 bytes), or a longer path than S3 keys allow (1,024
# bytes), failed in storage as a 500, which the mlflow client retries for minutes.
MAX_ARTIFACT_NAME_BYTES = 255
MAX_ARTIFACT_PATH_BYTES = 1024


@dataclass(frozen=True)
class ArtifactLocation:
    """A checked artifact path: the folder it lies in (a run's or a logged model's) and the
    path inside it."""

    experiment_id: int
    run_id: str | None
    model_id: str | None
    relative: str  # inside the folder; "" is the folder itself

    @property
    def folder(self) -> str:
        owner = self.run_id if self.run_id else f"models/{self.model_id}"
        return f"{self.experiment_id}/{owner}/artifacts"

    @property
    def name(self) -> str:
        """The storage name."""
        return posixpath.join(self.folder, self.relative) if self.relative else self.folder


@dataclass(frozen=True)
class ArtifactEntry:
    path: str  # relative to the folder that was listed
    is_dir: bool
    file_size: int | None  # None for a folder


@dataclass(frozen=True)
class ArtifactDownload:
    file: BinaryIO  # read in pieces, then closed
    file_name: str
    size: int


def artifact_storage() -> Storage:
    return storages["artifacts"]


# --- the one path rule ---------------------------------------------------------------------------


def artifact_path_normalise(raw: str) -> str:
    """`raw` as a clean relative path ("a/b/c.txt"), or InvalidParameterValue if it could leave
    its folder: `..` (also percent-encoded, however often), an absolute path or a drive letter,
    a backslash, a control character such as NUL, `#`, or an empty segment. One trailing slash
    is allowed (the client's "delete everything" sends the folder with one). A `.` segment names
    the folder it is in and is dropped: `download_artifacts(run_id, ".")`, the client's way to
    fetch a whole run, lists `<run's folder>/.` and then fetches `<run's folder>/./<file>`."""
    decoded = raw
    for _ in range(_MAX_DECODE_ROUNDS):
        once_more = unquote(decoded)
        if once_more == decoded:
            break
        decoded = once_more
    else:
        raise InvalidParameterValue(f"Invalid artifact path {raw!r}: encoded too many times.")
    path = decoded[:-1] if decoded.endswith("/") else decoded
    segments = [segment for segment in path.split("/") if segment != "."]
    path = "/".join(segments)
    if (
        not path
        or path.startswith("/")
        or "\\" in path
        or "#" in path
        or any(ord(char) < 32 or ord(char) == 127 for char in path)
        or re.match(r"[A-Za-z]:", path)
        or any(segment in ("", "..") for segment in segments)
    ):
        raise InvalidParameterValue(f"Invalid artifact path {raw!r}: it must stay inside its run's or model's folder.")
    if _utf8_length(path) > MAX_ARTIFACT_PATH_BYTES or any(
        _utf8_length(segment) > MAX_ARTIFACT_NAME_BYTES for segment in segments
    ):
        raise InvalidParameterValue(
            f"Invalid artifact path: a file or folder name may be at most {MAX_ARTIFACT_NAME_BYTES} bytes "
            f"(UTF-8), and a whole path at most {MAX_ARTIFACT_PATH_BYTES}; got {_utf8_length(path):,} bytes "
            f"starting {path[:80]!r}."
        )
    return path


def _utf8_length(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))  # a JSON body may carry a lone surrogate


def artifact_location(raw: str) -> ArtifactLocation:
    """Check `raw` (a path as the mlflow client sends it) and say whose folder it is in.

    A run's folder is `<experiment_id>/<run_id>/artifacts` (the server's own name for it, and
    its storage name), or whatever its `mlflow-artifacts:` URI names: an experiment created with
    `artifact_location="mlflow-artifacts:/team-a"`, or imported with its source's, gives its runs
    `team-a/<run_id>/artifacts`. Either way the files are stored under the server's name. The
    same holds for a logged model's `models/<model_id>/artifacts`."""
    path = artifact_path_normalise(raw)
    segments = path.split("/")
    owner = _owner_in(segments)
    if owner is None:
        raise InvalidParameterValue(
            f"Invalid artifact path {raw!r}: artifacts live in '<experiment_id>/<run_id>/artifacts/...' "
            "or '<experiment_id>/models/<model_id>/artifacts/...'."
        )
    run_id, model_id, start, end = owner
    prefix, folder = "/".join(segments[:start]), "/".join(segments[:end])
    if run_id is not None:
        found = Run.objects.filter(run_id=run_id).values_list("experiment_id", "artifact_uri").first()
        what = f"Run '{run_id}'"
    else:
        found = LoggedModel.objects.filter(model_id=model_id).values_list("experiment_id", "artifact_location").first()
        what = f"Logged model '{model_id}'"
    if found is None or not (prefix == str(found[0]) or _proxied_folder(found[1]) == folder):
        place = f"experiment {prefix}" if _EXPERIMENT_ID.fullmatch(prefix) else repr(prefix)
        raise ResourceDoesNotExist(f"{what} not found in {place}.")
    return ArtifactLocation(found[0], run_id, model_id, "/".join(segments[end:]))


def _owner_in(segments: list[str]) -> tuple[str | None, str | None, int, int] | None:
    """(run id, model id, where the owner's part starts, where its folder ends) of the first
    `<run_id>/artifacts` or `models/<model_id>/artifacts` in `segments` after at least one
    segment of location; None if there is none."""
    for start in range(1, len(segments)):
        if _RUN_ID.fullmatch(segments[start]) and segments[start + 1 : start + 2] == ["artifacts"]:
            return segments[start], None, start, start + 2
        if (
            segments[start] == "models"
            and _MODEL_ID.fullmatch("".join(segments[start + 1 : start + 2]))
            and segments[start + 2 : start + 3] == ["artifacts"]
        ):
            return None, segments[start + 1], start, start + 3
    return None


def _proxied_folder(artifact_uri: str) -> str | None:
    """The path an `mlflow-artifacts:` URI names in this server's store (its host, if any,
    left out); None for any other URI (the files are elsewhere)."""
    if not artifact_uri.startswith("mlflow-artifacts:"):
        return None
    return re.sub(r"^mlflow-artifacts:(//[^/]*)?/*", "", artifact_uri).rstrip("/")


# --- writes --------------------------------------------------------------------------------------


def artifact_put(*, path: str, body: BinaryIO, content_length: int | None) -> ArtifactEntry:
    """Store the bytes read from `body` at `path`, replacing any file there. `content_length`
    is what the request announced (None when it came chunked); a body that ends early, or
    passes RUNTREE_MAX_ARTIFACT_BYTES, stores nothing."""
    location = artifact_location(path)
    if not location.relative:
        raise InvalidParameterValue(f"Invalid artifact path {path!r}: it names the folder, not a file in it.")
    limit = settings.RUNTREE_MAX_ARTIFACT_BYTES
    if content_length is not None and content_length > limit:
        raise ArtifactTooLarge(_too_large_message(limit))
    storage = artifact_storage()
    with _spooled(body, expected=content_length, limit=limit, directory=_incoming_directory(storage)) as spooled:
        try:
            storage.save(location.name, spooled)
        except (FileExistsError, NotADirectoryError, IsADirectoryError) as error:
            raise InvalidParameterValue(f"Cannot store {path!r}: a file and a folder would share a name.") from error
        size = spooled.size
    return ArtifactEntry(path=location.relative, is_dir=False, file_size=size)


def artifact_delete(*, path: str) -> int:
    """Delete the file or the folder (with everything in it) at `path`; the number of files
    deleted (0 if there was nothing)."""
    location = artifact_location(path)
    return artifact_tree_delete(name=location.name)


def artifact_tree_delete(*, name: str) -> int:
    """Delete a storage name, file or folder, whatever is under it. For callers that have
    checked the name themselves (gc deletes a whole run's folder)."""
    storage = artifact_storage()
    folders, files = _listdir(storage, name)
    if not folders and not files:
        if storage.exists(name) and not _is_local_folder(storage, name):
            storage.delete(name)
            return 1
        _remove_empty_folder(storage, name)
        return 0
    deleted = 0
    for file_name in files:
        storage.delete(posixpath.join(name, file_name))
        deleted += 1
    for folder in folders:
        deleted += artifact_tree_delete(name=posixpath.join(name, folder))
    _remove_empty_folder(storage, name)
    return deleted


# --- reads ---------------------------------------------------------------------------------------


def artifact_list(*, path: str) -> list[ArtifactEntry]:
    """The folders and files directly inside `path`, by name (folders without a size). A file's
    path, or a path that does not exist, lists nothing, as MLflow's stores do."""
    location = artifact_location(path)
    return artifact_entries(name=location.name)


def artifact_entries(*, name: str) -> list[ArtifactEntry]:
    storage = artifact_storage()
    if isinstance(storage, S3Storage):
        folders, sized_files = _s3_listing(storage, name)
    else:
        folders, files = _listdir(storage, name)
        sized_files = {file_name: storage.size(posixpath.join(name, file_name)) for file_name in files}
    entries = [ArtifactEntry(path=folder, is_dir=True, file_size=None) for folder in sorted(folders)]
    entries += [
        ArtifactEntry(path=file_name, is_dir=False, file_size=sized_files[file_name])
        for file_name in sorted(sized_files)
    ]
    return entries


def artifact_file_names(*, name: str) -> list[str]:
    """The names of the files directly in folder `name`, sorted, without their sizes: a local
    folder's listing then costs no stat per file (a run's 10,000 logged images, ~0.1 s)."""
    storage = artifact_storage()
    if isinstance(storage, S3Storage):
        return sorted(_s3_listing(storage, name)[1])
    return sorted(_listdir(storage, name)[1])


def _s3_listing(storage: S3Storage, name: str) -> tuple[list[str], dict[str, int]]:
    """A folder of an S3 bucket with each file's size from the listing itself: Storage.size()
    would cost one HEAD request per file (a page of 200 files, 200 round trips)."""
    prefix = storage._normalize_name(name).rstrip("/") + "/"  # the storage's own key for `name`
    folders, files = [], {}
    pages = storage.connection.meta.client.get_paginator("list_objects_v2").paginate(
        Bucket=storage.bucket_name, Prefix=prefix, Delimiter="/"
    )
    for page in pages:
        folders += [entry["Prefix"][len(prefix) :].rstrip("/") for entry in page.get("CommonPrefixes", ())]
        files |= {
            entry["Key"][len(prefix) :]: entry["Size"] for entry in page.get("Contents", ()) if entry["Key"] != prefix
        }
    return folders, files


def artifact_open(*, path: str) -> ArtifactDownload:
    """The stored file at `path`, open for reading (the caller streams and closes it)."""
    location = artifact_location(path)
    storage = artifact_storage()
    if _is_local_folder(storage, location.name):
        raise InvalidParameterValue(f"Artifact path refers to a directory, not a file: {path!r}.")
    if not location.relative:
        raise ResourceDoesNotExist(f"No artifact at {path!r}.")
    if isinstance(storage, S3Storage):
        return _s3_download(storage, location.name, path)
    if not storage.exists(location.name):
        raise ResourceDoesNotExist(f"No artifact at {path!r}.")
    return ArtifactDownload(
        file=storage.open(location.name, "rb"),
        file_name=posixpath.basename(location.name),
        size=storage.size(location.name),
    )


def _s3_download(storage: S3Storage, name: str, path: str) -> ArtifactDownload:
    """The object's body as S3 sends it. Storage.open() would first copy the whole object into
    a temporary file: a 1 GiB download would wait for all of it before its first byte, and a
    preview of a file's first lines would fetch all of it."""
    try:
        answer = storage.bucket.Object(storage._normalize_name(name)).get()  # the storage's own key
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise ResourceDoesNotExist(f"No artifact at {path!r}.") from None
        raise
    return ArtifactDownload(file=answer["Body"], file_name=posixpath.basename(name), size=answer["ContentLength"])


# --- helpers -------------------------------------------------------------------------------------


class _SpooledBody(File):
    """A finished upload in a temporary file. `temporary_file_path` lets FileSystemStorage move
    it into place instead of copying it."""

    def temporary_file_path(self) -> str:
        return self.file.name


@contextlib.contextmanager
def _spooled(body: BinaryIO, *, expected: int | None, limit: int, directory: str | None) -> Iterator[_SpooledBody]:
    handle = tempfile.NamedTemporaryFile(dir=directory, prefix="upload-", delete=False)  # noqa: SIM115 (removed below)
    try:
        received = 0
        with handle:
            while chunk := body.read(CHUNK_BYTES):
                received += len(chunk)
                if received > limit:
                    raise ArtifactTooLarge(_too_large_message(limit))
                handle.write(chunk)
        if expected is not None and received != expected:
            raise InvalidParameterValue(
                f"The upload ended after {received} of its {expected} bytes; nothing was stored."
            )
        with open(handle.name, "rb") as spooled_file:
            spooled = _SpooledBody(spooled_file, name=handle.name)
            spooled.size = received  # known already; and the file may be moved away by the save
            yield spooled
    finally:
        # After a move into place the file is gone already; after a failure or a copy it is not.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(handle.name)


def _incoming_directory(storage: Storage) -> str | None:
    try:
        incoming = storage.path(INCOMING_FOLDER)
    except NotImplementedError:
        return None  # object storage: no local path, the system's temporary folder will do
    os.makedirs(incoming, exist_ok=True)
    return incoming


def _listdir(storage: Storage, name: str) -> tuple[list[str], list[str]]:
    try:
        folders, files = storage.listdir(name)
    except (FileNotFoundError, NotADirectoryError):
        return [], []
    return list(folders), list(files)


def _is_local_folder(storage: Storage, name: str) -> bool:
    try:
        return os.path.isdir(storage.path(name))
    except NotImplementedError:
        return False  # object storage has no folders, only names with slashes


def _remove_empty_folder(storage: Storage, name: str) -> None:
    if _is_local_folder(storage, name):
        with contextlib.suppress(OSError):
            os.rmdir(storage.path(name))


def _too_large_message(limit: int) -> str:
    return (
        f"The artifact is larger than this server's limit of {limit} bytes (RUNTREE_MAX_ARTIFACT_BYTES); "
        "nothing was stored."
    )


def run_artifact_path(*, run: Run, path: str | None) -> str:
    """The proxied path of `path` inside `run`'s artifacts, as the artifact API takes it; for
    MLflow's run-based endpoints (artifacts/list, get-artifact) and the run page. The run's
    artifact URI must name its own folder in this server's store (an imported run whose
    artifacts were not copied keeps its source's URI, and reads nothing here)."""
    return _own_folder_path(
        run.artifact_uri, f"{run.experiment_id}/{run.run_id}/artifacts", path, owner=f"Run '{run.run_id}'"
    )


def logged_model_artifact_path(*, model: LoggedModel, path: str | None) -> str:
    """As run_artifact_path, inside a logged model's folder (its files listing, the run page)."""
    own = f"{model.experiment_id}/models/{model.model_id}/artifacts"
    return _own_folder_path(model.artifact_location, own, path, owner=f"Logged model '{model.model_id}'")


def _own_folder_path(artifact_uri: str, own: str, path: str | None, *, owner: str) -> str:
    """`path` inside the owner's folder, by its storage name `own`, if its artifact URI names a
    folder in this server's store (artifact_location: the server's name, or the owner's part of
    it under another `mlflow-artifacts:` location)."""
    if not artifact_uri:
        raise InvalidParameterValue(f"{owner} has no artifact location.")
    proxied = _proxied_folder(artifact_uri)
    owners_part = own.split("/", 1)[1]  # `<run_id>/artifacts` or `models/<model_id>/artifacts`
    if proxied is None or not (proxied == own or proxied.endswith("/" + owners_part)):
        raise InvalidParameterValue(
            f"{owner} keeps its artifacts at {artifact_uri!r}, outside this server's artifact store."
        )
    return f"{own}/{artifact_path_normalise(path)}" if path else own
