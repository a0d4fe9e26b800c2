import django.db.models.functions.text
from django.db import migrations, models


def analyze_runs(apps, schema_editor):
    # PostgreSQL keeps statistics for an expression index's expression only once the table is
    # analyzed; until then it guessed 0.5% of all runs per root (5,000 at a million) and hashed
    # every match of a broad filter instead of probing the roots' trees (1 s instead of 10 ms),
    # and autovacuum analyzes a large, steady table late. An empty table is left unanalyzed: its
    # statistics would then say "no rows", and runs inserted before autovacuum looks again (a
    # fresh install's first sweep, a test's whole transaction) get plans made for none: the
    # teardown of a test adding 10,000 runs took 40 s instead of under 1 (the PostgreSQL suite
    # went from ~26 to 39 minutes).
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT EXISTS (SELECT 1 FROM tracker_run)")
        if cursor.fetchone()[0]:
            cursor.execute("ANALYZE tracker_run")


class Migration(migrations.Migration):
    dependencies = [
        ("tracker", "0010_live_version_indexes"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="run",
            index=models.Index(django.db.models.functions.text.Substr("path", 1, 12), name="run_root_idx"),
        ),
        migrations.RunPython(analyze_runs, migrations.RunPython.noop),
    ]
