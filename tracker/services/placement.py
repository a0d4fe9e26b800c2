"""Placing a run in its tree, in one home: the parent a run names, its depth and materialized
path, the mlflow.rootRunId tag, moving a subtree, adopting children that arrived first, and
the bulk linking the importer and the test factories use.

The parent link is the MLflow tag mlflow.parentRunId; `Run.parent` is kept in step with it. A
run whose parent has not arrived is a root marked "parent missing" until it does. A cycle is
refused, and so is a tree deeper than MAX_DEPTH.
"""

from collections import defaultdict

from django.db import connection
from django.db.models import CharField, F, Max, OuterRef, Subquery, Value
from django.db.models.functions import Cast, Concat, LPad, Substr

from tracker import hot_sql, tasks
from tracker.constants import PARENT_RUN_ID_TAG, ROOT_RUN_ID_TAG
from tracker.errors import InvalidParameterValue
from tracker.models import PATH_SEGMENT_WIDTH, PATH_SEPARATOR, Experiment, Run, RunTag, path_ids, path_segment
from tracker.services.validation import check_run_id

# The materialized path holds one fixed-width segment per level (see models.PATH_SEGMENT_WIDTH).
MAX_DEPTH = Run._meta.get_field("path").max_length // (PATH_SEGMENT_WIDTH + 1) - 1


def attach(run: Run, parent: Run | None, parent_run_id: str) -> None:
    """Point `run`, not stored yet or not placed yet, at `parent` (None: a root, or "parent
    missing" when `parent_run_id` is set): its parent, parent_run_id and depth. Refuses a tree
    deeper than MAX_DEPTH."""
    run.parent, run.parent_run_id = parent, parent_run_id
    run.depth = parent.depth + 1 if parent else 0
    if run.depth > MAX_DEPTH:
        raise InvalidParameterValue(f"Run trees may be at most {MAX_DEPTH + 1} levels deep")


def tree_path(run: Run, parent: Run | None) -> str:
    """The materialized path of `run` (which has its pk) under `parent`."""
    return (parent.path if parent else "") + path_segment(run.pk)


def root_run_id(run: Run, parent: Run | None = None) -> str:
    root_pk = run.root_pk
    for known in (run, parent):
        if known is not None and known.pk == root_pk:
            return known.run_id
    return hot_sql.run_id_by_pk(root_pk)


# Moving a subtree rewrites the paths under it, so on PostgreSQL it must not overlap with
# another move or with a new run being placed under it; the experiment's row is the lock.
# - Moves take it FOR NO KEY UPDATE, one at a time: otherwise A → B and B → A sent at once each
#   pass the cycle check (neither sees the other's move), both commit, and the two runs form a
#   cycle that leaves every tree of the experiment's page.
# - A run created under a parent takes it FOR SHARE (many at once): otherwise a child whose
#   parent's path it read before a move committed, and which commits after the move's UPDATE
#   began, keeps the old path and drops out of its tree.
# New runs' foreign key takes FOR KEY SHARE, which neither blocks. SQLite's writers already go
# one at a time, so there this is skipped.


def _serialize_moves(run: Run) -> None:
    """Take the move lock above, then re-read where `run` sits now (a move that went first may
    have changed it)."""
    if connection.vendor == "postgresql":
        hot_sql.lock_experiment_for_move(run.experiment_id)
    run.refresh_from_db(fields=["parent", "parent_run_id", "path", "depth"])


def place_new_run(run: Run, parent_run_id: str) -> Run | None:
    """The parent a run being created names (None: a root, or "parent missing"), with the run
    attached to it, holding still until the run commits."""
    parent = find_parent(run, parent_run_id, new_run=True)
    attach(run, parent, parent_run_id)
    return parent


def set_parent(run: Run, parent_run_id: str) -> None:
    """Point `run` at `parent_run_id` ('' = root) and move its subtree. Refuses a cycle."""
    _serialize_moves(run)
    parent = find_parent(run, parent_run_id)
    old_parent_pk = run.parent_id
    run.parent_run_id = parent_run_id
    run.parent = parent
    run.save(update_fields=["parent_run_id", "parent"])
    move_subtree(run, parent)
    if old_parent_pk != run.parent_id:
        tasks.mark_parents_stale_and_queue(run=run, old_parent_pk=old_parent_pk)


def find_parent(run: Run, parent_run_id: str, *, new_run: bool = False) -> Run | None:
    """The run `parent_run_id` names, if it is known yet (None: a root, or "parent missing").
    Refuses a malformed id, the run itself, a descendant (a cycle) and another experiment.
    For a `new_run` the experiment's trees are held still until it commits (above)."""
    if parent_run_id:
        check_run_id(parent_run_id, f"'{PARENT_RUN_ID_TAG}'")
    if parent_run_id == run.run_id:
        raise InvalidParameterValue(f"Run {run.run_id} cannot be its own parent")
    if parent_run_id and new_run and connection.vendor == "postgresql":
        hot_sql.lock_experiment_for_new_run(run.experiment_id)
    parent = hot_sql.run_by_run_id(parent_run_id) if parent_run_id else None
    if parent is not None:
        if run.path and parent.path.startswith(run.path):
            raise InvalidParameterValue(
                f"Setting the parent of run {run.run_id} to {parent_run_id} would make a cycle: "
                f"{parent_run_id} is a descendant of {run.run_id}"
            )
        if parent.experiment_id != run.experiment_id:
            raise InvalidParameterValue(
                f"Parent run {parent_run_id} is in experiment {parent.experiment_id}, "
                f"but run {run.run_id} is in experiment {run.experiment_id}; a run tree lives in one experiment"
            )
    return parent


def move_subtree(run: Run, parent: Run | None) -> None:
    """Rewrite the path and depth of `run` and every descendant in one UPDATE, then the
    mlflow.rootRunId tag of the whole subtree in another."""
    old_path = run.path
    new_path = (parent.path if parent else "") + path_segment(run.pk)
    if new_path == old_path:
        return
    depth_change = (parent.depth + 1 if parent else 0) - run.depth
    if depth_change > 0:
        deepest = Run.objects.subtree_of(run).aggregate(d=Max("depth"))["d"]
        if deepest + depth_change > MAX_DEPTH:
            raise InvalidParameterValue(f"Run trees may be at most {MAX_DEPTH + 1} levels deep")
    Run.objects.subtree_of(run).update(
        path=Concat(Value(new_path), Substr("path", len(old_path) + 1)),
        depth=F("depth") + depth_change,
    )
    run.path = new_path
    run.depth += depth_change
    root_id = parent and root_run_id(parent) or run.run_id
    RunTag.objects.filter(key=ROOT_RUN_ID_TAG, run__in=Run.objects.subtree_of(run).values("pk")).update(value=root_id)


def adopt_waiting_children(run: Run) -> None:
    """Attach runs that named this run as parent before it existed (imports arrive in any order)."""
    waiting = hot_sql.waiting_children(run)
    if not waiting:
        return
    _serialize_moves(run)
    for child in hot_sql.waiting_children(run):
        child.parent = run
        child.save(update_fields=["parent"])
        move_subtree(child, run)
        tasks.mark_parents_stale_and_queue(run=child, old_parent_pk=None)


# --- bulk linking (the importer, the test factories) ---------------------------------------


def experiment_link_parents(*, experiment: Experiment) -> list[int]:
    """Give every run of `experiment` the parent, depth, path and mlflow.rootRunId that its
    parent_run_id asks for, in a few bulk queries; return the pks of the runs that were placed
    or moved.

    Bulk writers insert runs with an empty path and call this once every run of the batch
    exists, so runs may arrive in any order. The rules are run_create's: a parent that is not in
    the experiment leaves the run a root marked "parent missing" (and it attaches when the
    parent arrives). A link that would close a cycle or nest deeper than MAX_DEPTH, which a
    single write refuses, is left unfollowed the same way: the runs already exist. Runs already
    in place are not touched, so calling this again changes nothing.
    """
    fields = ["pk", "run_id", "parent_run_id", "parent_id", "depth", "path"]
    rows = list(Run.objects.filter(experiment=experiment).values_list(*fields))
    pk_by_run_id = {run_id: pk for pk, run_id, *_ in rows}
    run_id_by_pk = {pk: run_id for run_id, pk in pk_by_run_id.items()}
    parent_of: dict[int, int | None] = {}
    children: dict[int, list[int]] = defaultdict(list)
    for pk, _, parent_run_id, *_ in rows:
        parent_pk = pk_by_run_id.get(parent_run_id) if parent_run_id else None
        parent_of[pk] = parent_pk if parent_pk != pk else None
        if parent_of[pk] is not None:
            children[parent_of[pk]].append(pk)

    places: dict[int, tuple[int | None, int, str]] = {}  # pk -> (parent pk, depth, path)

    def place_subtree(top: int) -> None:
        stack = [top]
        while stack:
            pk = stack.pop()
            parent_pk = parent_of[pk] if pk != top else None
            if parent_pk is not None and places[parent_pk][1] < MAX_DEPTH:
                _, parent_depth, parent_path = places[parent_pk]
                places[pk] = (parent_pk, parent_depth + 1, parent_path + path_segment(pk))
            else:
                places[pk] = (None, 0, path_segment(pk))
            stack.extend(child for child in children[pk] if child not in places)

    for pk, parent_pk in parent_of.items():
        if parent_pk is None:
            place_subtree(pk)
    # What is left hangs below a cycle (a → b → a): cut each cycle at its oldest run.
    for pk in sorted(parent_of):
        if pk in places:
            continue
        chain, seen = [pk], {pk}
        while parent_of[chain[-1]] not in seen:
            chain.append(parent_of[chain[-1]])
            seen.add(chain[-1])
        cycle = chain[chain.index(parent_of[chain[-1]]) :]
        place_subtree(min(cycle))

    moved = [pk for pk, _, _, parent_id, depth, path in rows if (parent_id, depth, path) != places[pk]]
    # One UPDATE per level (in batches), shallowest first, each computing the path in SQL from
    # the parent's, written by the level before: a CASE per row costs far more at 100,000 runs.
    moved_by_depth: dict[int, list[int]] = defaultdict(list)
    for pk in moved:
        moved_by_depth[places[pk][1]].append(pk)
    own_segment = Concat(LPad(Cast("pk", CharField()), PATH_SEGMENT_WIDTH, Value("0")), Value(PATH_SEPARATOR))
    # Below the roots a run's parent is the run its parent_run_id names (run ids are unique);
    # the links not followed (missing, cyclic, too deep) are all among the roots.
    parent = Run.objects.filter(run_id=OuterRef("parent_run_id"))
    for depth, pks in sorted(moved_by_depth.items()):
        for start in range(0, len(pks), 5000):
            level = Run.objects.filter(pk__in=pks[start : start + 5000])
            if depth == 0:
                level.update(parent=None, depth=0, path=own_segment)
            else:
                parent_path = Subquery(parent.values("path"))
                level.update(parent=Subquery(parent.values("pk")), depth=depth, path=Concat(parent_path, own_segment))
    RunTag.objects.bulk_create(
        [RunTag(run_id=pk, key=ROOT_RUN_ID_TAG, value=run_id_by_pk[path_ids(places[pk][2])[0]]) for pk in moved],
        update_conflicts=True,
        unique_fields=["run", "key"],
        update_fields=["value"],
        batch_size=1000,
    )
    return moved
