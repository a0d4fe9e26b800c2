"""The tree page's roots in its default order (newest first, NULL last, then run id) as a partial
index over roots alone. The roots are ~1% of a sweep-heavy experiment's runs: walked along
(experiment, start_time) a page of them skipped every child, so PostgreSQL read all roots through
the parent index and sorted them instead. At 1,020,001 runs (10,001 roots,
bench/million.py, AMD EPYC, quiet, EXPLAIN ANALYZE medians of 15) the roots' count went from 2.9 to
1.2 ms (an index-only scan: the lifecycle stage rides along), their first page from 6.1 to 1.3 ms,
and a broad filter's batch of roots asked for matches from 5.3 to 0.4 ms (37 ms with the parent
index's pages out of memory). The tree's first page: 55-63 ms to 38-43 in the process.

SQLite gets it without NULLS LAST, which it refuses in an index: its DESC puts NULL last anyway."""

from django.db import migrations

INDEX = "run_roots_order_idx"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        order = '"start_time" DESC NULLS LAST, "run_id") INCLUDE ("lifecycle_stage")'
    else:
        order = '"start_time" DESC, "run_id")'
    schema_editor.execute(
        f'CREATE INDEX IF NOT EXISTS "{INDEX}" ON "tracker_run" ("experiment_id", {order} WHERE "parent_id" IS NULL'
    )


def drop(apps, schema_editor):
    schema_editor.execute(f'DROP INDEX IF EXISTS "{INDEX}"')


class Migration(migrations.Migration):
    dependencies = [("tracker", "0017_dataset_input_context")]

    operations = [migrations.RunPython(create, drop)]
