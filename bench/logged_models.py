"""Benchmark of the logged-model pages (MLflow 3's `log_model`), on PostgreSQL:

- an experiment of 10,000 logged models (a sweep of 10,000 trials, each logging its model and
  its accuracy and loss on a train and a test set: 4 points a model), and 20 checkpoint models
  whose runs logged every step while the model was active (`mlflow.set_active_model`: 3 metrics
  × 2,000 steps linked to each model, 120,000 points);
- its models page (newest first), sorted by a metric on one dataset, and its 100th page;
- the page of one checkpoint model (6,000 points reduced to its latest per metric and dataset).

Target: each page under 150 ms server time, as issue #20 asks of every page.

Server time is Django's whole request through the test Client (no network), min / median / max
over repeats after a warm-up.

    .venv/bin/python bench/logged_models.py            # the sizes above (built once, kept)
    .venv/bin/python bench/logged_models.py --smoke    # 200 models, 3 checkpoints × 100 steps
    .venv/bin/python bench/logged_models.py --write    # also update docs/benchmarks.md
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# DATABASE_URL names another database (a helper's own, on a shared machine); this one by default.
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/runtree_bench_logged_models")
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
DATABASE = os.environ["DATABASE_URL"].rsplit("/", 1)[1]
os.environ.pop("CELERY_BROKER_URL", None)

FULL = {"models": 10_000, "checkpoints": 20, "steps": 2_000, "repeats": 9}
SMOKE = {"models": 200, "checkpoints": 3, "steps": 100, "repeats": 2}
TARGET_MS = 150
START_MS = 1_700_000_000_000


def build(sizes: dict):
    """The experiment, made once per size: runs and models by bulk_create, as the write
    services would make them (the rows are the same; the services would take many minutes)."""
    from django.db import connection, transaction

    from tracker.models import Experiment, LoggedModel

    label = f"bench-logged-models-{sizes['models']}-{sizes['checkpoints']}x{sizes['steps']}"
    experiment = Experiment.objects.filter(name=label).first()
    if experiment is not None:
        return experiment, LoggedModel.objects.filter(experiment=experiment, name="checkpoint").first()
    with transaction.atomic():  # a build cut short leaves nothing a later run would take as built
        built = _build(label, sizes)
    # Fresh statistics, as autovacuum would gather after a bulk load: with none, PostgreSQL
    # planned the page's models query for one row (28 ms against 10).
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE tracker_run, tracker_loggedmodel, tracker_loggedmodelmetric")
    return built


def _build(label: str, sizes: dict):
    import numpy as np

    from tracker.models import LoggedModel, LoggedModelMetric, LoggedModelStatus, Run, RunStatus, path_segment
    from tracker.services import experiment_create

    started = time.perf_counter()
    experiment = experiment_create(name=label)
    count = sizes["models"] + sizes["checkpoints"]
    runs = Run.objects.bulk_create(
        (
            Run(experiment=experiment, name=f"trial-{i}", status=RunStatus.FINISHED, start_time=START_MS + i * 1_000,
                end_time=START_MS + i * 1_000 + 500)
            for i in range(count)
        ),
        batch_size=5_000,
    )  # fmt: skip
    for run in runs:
        run.path = path_segment(run.pk)
    Run.objects.bulk_update(runs, ["path"], batch_size=5_000)
    models = LoggedModel.objects.bulk_create(
        (
            LoggedModel(
                experiment=experiment,
                source_run=run,
                model_id=f"m-{run.pk:032x}",
                name="checkpoint" if i >= sizes["models"] else "model",
                status=LoggedModelStatus.READY,
                artifact_location=f"mlflow-artifacts:/{experiment.pk}/models/m-{run.pk:032x}/artifacts",
                creation_time=START_MS + i * 1_000,
                last_updated_time=START_MS + i * 1_000,
            )
            for i, run in enumerate(runs)
        ),
        batch_size=5_000,
    )
    generator = np.random.default_rng(count)
    points = []
    for model, run in zip(models[: sizes["models"]], runs, strict=False):
        at = model.creation_time
        for offset, (key, dataset, value) in enumerate(
            (
                ("accuracy", "train", generator.uniform(0.8, 1.0)),
                ("accuracy", "test", generator.uniform(0.6, 0.95)),
                ("loss", "train", generator.uniform(0.0, 0.5)),
                ("loss", "test", generator.uniform(0.1, 0.8)),
            )
        ):
            points.append(
                LoggedModelMetric(
                    model=model,
                    run=run,
                    key=key,
                    value=value,
                    timestamp=at + offset,
                    step=0,
                    dataset_name=dataset,
                    dataset_digest=f"{dataset}0000",
                )  # fmt: skip
            )
    for model, run in zip(models[sizes["models"] :], runs[sizes["models"] :], strict=True):
        for step in range(sizes["steps"]):
            for key in ("loss", "accuracy", "learning_rate"):
                points.append(
                    LoggedModelMetric(
                        model=model,
                        run=run,
                        key=key,
                        value=generator.random(),
                        timestamp=model.creation_time + step,
                        step=step,
                    )  # fmt: skip
                )
    LoggedModelMetric.objects.bulk_create(points, batch_size=10_000)
    print(f"built {count:,} models and {len(points):,} metric points in {time.perf_counter() - started:.0f} s")
    return experiment, models[-1]


def time_request(client, url: str, repeats: int) -> dict:
    from bench.report import timings

    client.get(url)  # warm-up
    elapsed, content = timings(client, url, repeats)
    return {"ms": elapsed, "kib": len(content) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a fresh database")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    sizes = SMOKE if args.smoke else FULL

    from bench.report import create_database, machine, postgres_version, spread, today, write_section

    create_database(DATABASE, fresh=args.smoke)
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from tracker.selectors.logged_models import MODELS_PER_PAGE

    call_command("migrate", verbosity=0)
    load = os.getloadavg()[0]
    experiment, checkpoint = build(sizes)
    client, repeats = Client(), sizes["repeats"]
    listing = f"/experiments/{experiment.pk}/models/"
    last_page = -(-(sizes["models"] + sizes["checkpoints"]) // MODELS_PER_PAGE)
    page_n = min(100, last_page)
    rows = [
        ("list", listing, f"the models page, newest first ({MODELS_PER_PAGE} of {sizes['models']:,} models)"),
        ("sorted", f"{listing}?sort=-metrics.accuracy&on=test", "sorted by accuracy on the test set, best first"),
        ("filtered", f"{listing}?filter=metrics.accuracy+%3E+0.9", "filtered: `metrics.accuracy > 0.9`"),
        ("page n", f"{listing}?page={page_n}", f"its page {page_n}"),
        (
            "checkpoint",
            f"{listing}{checkpoint.model_id}/",
            f"a checkpoint model's page ({3 * sizes['steps']:,} points linked to it: 3 metrics × "
            f"{sizes['steps']:,} steps)",
        ),
    ]
    results = {name: time_request(client, url, repeats) for name, url, _ in rows}
    for name, measured in results.items():
        print(f"{name:>12}: {spread(measured['ms'])} ms, {measured['kib']:,.0f} KiB")
    slowest = max(statistics.median(measured["ms"]) for measured in results.values())
    verdict = "met" if slowest < TARGET_MS else "**missed**"
    print(f"every page under {TARGET_MS} ms: {verdict} (slowest median {slowest:.0f} ms)")
    if not args.write:
        return
    lines = [
        "## Logged models: an experiment's models page and a model's page",
        "",
        f"`bench/logged_models.py`, {today()}: {machine()}, PostgreSQL {postgres_version()}; load average "
        f"{load:.1f} when it started. An experiment of {sizes['models']:,} logged models, each with accuracy "
        f"and loss on a train and a test set, and {sizes['checkpoints']} checkpoint models with "
        f"{3 * sizes['steps']:,} points each (a run that logged every step while its model was active). Server "
        "time is the whole Django request through the test Client (no network); min / median / max over "
        "repeats after a warm-up.",
        "",
        "| what | server time, ms | response |",
        "|---|---:|---:|",
    ]
    lines += [
        f"| {label} | {spread(results[name]['ms'])} | {results[name]['kib']:,.0f} KiB |" for name, _, label in rows
    ]
    lines += [
        "",
        f"Target: every page under {TARGET_MS} ms server time: {verdict} (the slowest median {slowest:.0f} ms). "
        "A page's metric columns are its models' latest point per metric and dataset, ranked by a window "
        "function in one query over the points of the page's models only (tracker/selectors/logged_models.py).",
    ]
    write_section("logged-models", "\n".join(lines))
    print("wrote the Logged models section of docs/benchmarks.md")


if __name__ == "__main__":
    main()
