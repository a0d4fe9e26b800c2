"""Summaries computed while every metric without a goal tag was "min" may rank an `accuracy`
or `r2` the wrong way now that the goal is inferred from the name (tracker/goals.py): mark every
parent with a summary stale, so the beat's repair task (tracker.tasks.repair_stale_summaries)
recomputes them by the new rule. Self-contained: it reads no app code."""

from django.db import migrations


def mark_summarised_parents_stale(apps, schema_editor):
    Run = apps.get_model("tracker", "Run")
    RunSummary = apps.get_model("tracker", "RunSummary")
    parents = RunSummary.objects.values("run_id").distinct()
    Run.objects.filter(pk__in=parents).update(summary_stale=True, summary_queued=False)


class Migration(migrations.Migration):
    dependencies = [("tracker", "0004_parent_run_id_index")]

    operations = [migrations.RunPython(mark_summarised_parents_stale, migrations.RunPython.noop)]
