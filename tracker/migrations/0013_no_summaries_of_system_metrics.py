"""Summaries, kept bands and param importance are of the model's metrics only since this change:
the machine's (MLflow's `system/` metrics, tracker/constants.py) are dropped from what was kept
before it. The parents that had a system metric summarised lose their kept bands too (the
periodic task keeps them again, without the system bands; pages aggregate for themselves
meanwhile). Their other summary rows are left as they are: they did not change."""

from django.db import migrations
from django.db.models.functions import Substr

SYSTEM_METRIC_PREFIX = "system/"  # tracker.constants.SYSTEM_METRIC_PREFIX as of this migration


def _system_rows(model):
    # Substr, not startswith: SQLite's LIKE ignores case, and `System/x` is a metric of the model's.
    return model.objects.annotate(prefix=Substr("key", 1, len(SYSTEM_METRIC_PREFIX))).filter(
        prefix=SYSTEM_METRIC_PREFIX
    )


def drop_system_metrics(apps, schema_editor):
    RunSummary = apps.get_model("tracker", "RunSummary")
    ChildBands = apps.get_model("tracker", "ChildBands")
    ParamImportance = apps.get_model("tracker", "ParamImportance")
    parents = _system_rows(RunSummary).values("run_id")
    ChildBands.objects.filter(run_id__in=parents).delete()
    _system_rows(RunSummary).delete()
    _system_rows(ParamImportance).delete()


class Migration(migrations.Migration):
    dependencies = [("tracker", "0012_latest_metric_value_beside_key")]

    operations = [migrations.RunPython(drop_system_metrics, migrations.RunPython.noop)]
