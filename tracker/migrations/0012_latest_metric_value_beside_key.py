"""The latest-metric unique index (run, key) carries the value too, on PostgreSQL: `metrics.k < x`
is then checked for a run from the index alone. A tag + metric filter over 101,000 runs hashed
the 50,000 runs under the bound, read from the table (36 ms); it now probes the 2,020 tagged
runs' index entries (11 ms; bench/search.py, EXPLAIN ANALYZE). Upserts already rewrite this
index's entry (the value is in latest_metric_key_value_idx too), so writes pay nothing new.

PostgreSQL only, and outside Django's model state: Django leaves a constraint with INCLUDE out
entirely on SQLite, whose upserts need the plain unique index (ON CONFLICT (run, key))."""

from django.db import migrations

TABLE = "tracker_latestmetric"
CONSTRAINT = "uniq_latest_metric"


def carry_value(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f'ALTER TABLE "{TABLE}" DROP CONSTRAINT "{CONSTRAINT}", '
            f'ADD CONSTRAINT "{CONSTRAINT}" UNIQUE ("run_id", "key") INCLUDE ("value")'
        )


def plain(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f'ALTER TABLE "{TABLE}" DROP CONSTRAINT "{CONSTRAINT}", ADD CONSTRAINT "{CONSTRAINT}" UNIQUE ("run_id", "key")'
        )


class Migration(migrations.Migration):
    dependencies = [("tracker", "0011_run_root_index")]

    operations = [migrations.RunPython(carry_value, plain)]
