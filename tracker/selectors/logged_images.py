"""Images a run logged by key and step (`mlflow.log_image(image, key="sample", step=3)`), read
off the names MLflow gives them in the run's `images/` folder: for each image
`<key>+step+<step>+timestamp+<ms>+<uuid>.png` and a `...+compressed.webp` thumbnail beside it
(mlflow/tracking/client.py log_image; a `/` in the key is written `~`, and older clients wrote
`%` for `+` and `#` for `/`). No database queries: one listing of the folder."""

import re
from dataclasses import dataclass, field

from tracker.constants import LOGGED_IMAGES_TAG
from tracker.errors import TrackingError
from tracker.models import Run
from tracker.services import artifacts

IMAGES_FOLDER = "images"
# A key's strip shows its last this many steps (the folder lists them all).
STEPS_SHOWN = 24
# A run page shows this many keys at most.
KEYS_SHOWN = 12

_NAME = re.compile(
    r"^(?P<key>.+?)[+%]step[+%](?P<step>-?\d+)[+%]timestamp[+%](?P<timestamp>\d+)[+%](?P<uuid>[0-9a-fA-F-]+)"
    r"(?P<compressed>[+%]compressed)?\.(?:png|webp)$"
)


@dataclass(frozen=True)
class ImageName:
    key: str
    step: int
    timestamp: int
    uuid: str  # the same for an image and its thumbnail
    compressed: bool  # the thumbnail


def image_name(file_name: str) -> ImageName | None:
    """What MLflow's name for a logged image says, or None for any other file."""
    found = _NAME.match(file_name)
    if found is None:
        return None
    key = found["key"].replace("~", "/").replace("#", "/")
    return ImageName(key, int(found["step"]), int(found["timestamp"]), found["uuid"], bool(found["compressed"]))


@dataclass(frozen=True)
class LoggedImage:
    step: int
    timestamp: int
    path: str  # the full-resolution PNG, from the run's artifact root
    thumbnail: str  # the compressed copy MLflow logs beside it, else the PNG itself


@dataclass
class ImageSeries:
    key: str
    images: list[LoggedImage] = field(default_factory=list)  # the last STEPS_SHOWN steps, in step order
    steps: int = 0  # steps logged in all

    @property
    def earlier_steps(self) -> int:
        return self.steps - len(self.images)


@dataclass(frozen=True)
class LoggedImages:
    series: list[ImageSeries]
    more_keys: int = 0  # keys past KEYS_SHOWN, left out
    problem: str = ""  # why the folder could not be read


def logged_images(run: Run) -> LoggedImages:
    """Each key's images, the latest of each step (a step logged twice shows its newer image)."""
    try:
        names = artifacts.artifact_file_names(name=artifacts.run_artifact_path(run=run, path=IMAGES_FOLDER))
    except TrackingError as error:
        return LoggedImages([], problem=error.message)
    full: dict[tuple[str, str], tuple[str, int, int]] = {}  # (key, uuid) → (path, step, timestamp)
    thumbnails: dict[tuple[str, str], str] = {}
    for file_name in names:
        named = image_name(file_name)
        if named is None:
            continue
        path = f"{IMAGES_FOLDER}/{file_name}"
        if named.compressed:
            thumbnails[named.key, named.uuid] = path
        else:
            full[named.key, named.uuid] = (path, named.step, named.timestamp)
    by_key: dict[str, dict[int, LoggedImage]] = {}
    for (key, uuid), (path, step, timestamp) in full.items():
        steps = by_key.setdefault(key, {})
        if step not in steps or timestamp > steps[step].timestamp:
            steps[step] = LoggedImage(step, timestamp, path, thumbnails.get((key, uuid), path))
    keys = sorted(by_key)
    series = [
        ImageSeries(key, [steps[step] for step in sorted(steps)][-STEPS_SHOWN:], len(steps))
        for key, steps in ((key, by_key[key]) for key in keys[:KEYS_SHOWN])
    ]
    return LoggedImages(series, more_keys=max(0, len(keys) - KEYS_SHOWN))


# The compare page shows the images of this many runs at most: each costs a listing of its folder.
COMPARE_RUNS_SHOWN = 12


@dataclass(frozen=True)
class RunImage:
    run_id: str
    image: LoggedImage | None  # the run's image at its last step of the key; None: it logged none


@dataclass(frozen=True)
class ComparedImages:
    keys: list[str]  # every key the runs shown logged images of
    key: str  # the one shown
    runs: list[RunImage]  # in the order asked
    more_runs: int = 0  # runs with images past COMPARE_RUNS_SHOWN, left out


def compared_images(run_pks: list[int], *, key: str = "") -> ComparedImages | None:
    """The last-step image of `key` (else of the key most of them logged) of each of the first
    COMPARE_RUNS_SHOWN of `run_pks`, in that order, that logged images by key; None when none
    did. One query, and one listing of each such run's images/ folder."""
    tagged = {
        run.pk: run
        for run in Run.objects.filter(pk__in=run_pks, tags__key=LOGGED_IMAGES_TAG).only(
            "pk", "run_id", "experiment_id", "artifact_uri"
        )
    }
    shown = [tagged[pk] for pk in run_pks if pk in tagged]
    if not shown:
        return None
    series = {run.run_id: {s.key: s for s in logged_images(run).series} for run in shown[:COMPARE_RUNS_SHOWN]}
    keys = sorted({found for by_key in series.values() for found in by_key})
    if key not in keys:  # the key most of them logged, first by name among equals
        key = min(keys, key=lambda name: (-sum(name in by_key for by_key in series.values()), name), default="")
    runs = [
        RunImage(run_id, by_key[key].images[-1] if key in by_key and by_key[key].images else None)
        for run_id, by_key in series.items()
    ]
    return ComparedImages(keys, key, runs, more_runs=max(0, len(shown) - COMPARE_RUNS_SHOWN))
