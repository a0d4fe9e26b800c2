"""For tests of a data migration: the database taken back to the migration before it, rows
written as the models then stood, the migration run, and the schema always left at the latest
migration afterwards (whatever the test's outcome), as the other tests expect it."""

import contextlib

from django.db import connection
from django.db.migrations.executor import MigrationExecutor


class MigrationStep:
    def __init__(self, executor: MigrationExecutor, before: str, after: str):
        self.executor, self.before, self.after = executor, [("tracker", before)], [("tracker", after)]

    def models_before(self, *names: str) -> tuple:
        """The tracker models named, as they stood at the migration before."""
        return self._models(self.before, names)

    def migrate(self, *names: str) -> tuple:
        """Run the migration; the tracker models named, as they stand after it."""
        self.executor.loader.build_graph()
        self.executor.migrate(self.after)
        return self._models(self.after, names)

    def _models(self, target, names) -> tuple:
        apps = self.executor.loader.project_state(target).apps
        return tuple(apps.get_model("tracker", name) for name in names)


@contextlib.contextmanager
def migrating(*, before: str, after: str):
    """A MigrationStep from tracker migration `before` to `after` (names of the app's migrations).
    The test needs @pytest.mark.django_db(transaction=True): migrations cannot run in its transaction."""
    executor = MigrationExecutor(connection)
    executor.migrate([("tracker", before)])
    try:
        yield MigrationStep(executor, before, after)
    finally:
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
