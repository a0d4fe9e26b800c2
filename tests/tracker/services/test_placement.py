"""Run trees of any depth: reads in a constant number of queries, re-parenting, orphans."""

import pytest

from tests.factories import build_chain, build_tree
from tracker import services
from tracker.errors import InvalidParameterValue
from tracker.models import Run, RunTag
from tracker.services import KeyValue

pytestmark = pytest.mark.django_db


def tag(run, key):
    return RunTag.objects.filter(run=run, key=key).values_list("value", flat=True).first()


def create(experiment, name, parent=None, run_id=None):
    tags = [KeyValue("mlflow.parentRunId", parent.run_id if isinstance(parent, Run) else parent)] if parent else []
    return services.run_create(experiment=experiment, name=name, tags=tags, run_id=run_id)


class TestFiveLevelTree:
    @pytest.fixture
    def chain(self, experiment):
        return build_chain(5, experiment=experiment)

    def test_ancestors_come_root_first_in_one_query(self, chain, django_assert_num_queries):
        with django_assert_num_queries(1):
            ancestors = list(Run.objects.ancestors_of(chain[-1]))
        assert ancestors == chain[:-1]

    def test_the_subtree_is_every_descendant_in_one_query(self, chain, django_assert_num_queries):
        with django_assert_num_queries(1):
            subtree = set(Run.objects.subtree_of(chain[1]))
        assert subtree == set(chain[1:])

    def test_children_carry_their_own_child_count_in_one_query(self, experiment, django_assert_num_queries):
        roots = build_tree([2, 3, 4], experiment=experiment)[:2]
        with django_assert_num_queries(1):
            children = list(Run.objects.children_of(roots[0]).with_child_count().in_start_order())
        assert [child.child_count for child in children] == [4, 4, 4]

    def test_the_query_count_does_not_grow_with_depth_or_size(self, experiment, django_assert_num_queries):
        deep = build_chain(40, experiment=experiment)
        wide = build_tree([1, 30, 3], experiment=experiment)
        for run in (deep[-1], wide[-1]):
            with django_assert_num_queries(1):
                list(Run.objects.ancestors_of(run))
        for run in (deep[0], wide[0]):
            with django_assert_num_queries(1):
                list(Run.objects.subtree_of(run))

    def test_roots_are_paged_newest_first(self, experiment):
        roots = [create(experiment, f"root-{i}") for i in range(5)]
        for i, run in enumerate(roots):
            Run.objects.filter(pk=run.pk).update(start_time=1000 + i)
        page = list(Run.objects.in_experiment(experiment).roots().in_start_order()[:2])
        assert [run.name for run in page] == ["root-4", "root-3"]


class TestReparenting:
    def test_moving_a_run_moves_its_whole_subtree(self, experiment):
        a = create(experiment, "a")
        b = create(experiment, "b")
        child = create(experiment, "child", parent=a)
        grandchild = create(experiment, "grandchild", parent=child)

        services.run_set_tag(run=child, key="mlflow.parentRunId", value=b.run_id)

        grandchild.refresh_from_db()
        assert list(Run.objects.ancestors_of(grandchild)) == [b, child]
        assert set(Run.objects.subtree_of(a)) == {a}
        assert set(Run.objects.subtree_of(b)) == {b, child, grandchild}
        assert grandchild.depth == 2
        assert tag(grandchild, "mlflow.rootRunId") == b.run_id
        assert tag(child, "mlflow.rootRunId") == b.run_id

    def test_deleting_the_parent_tag_makes_the_run_a_root(self, experiment):
        parent = create(experiment, "parent")
        child = create(experiment, "child", parent=parent)
        leaf = create(experiment, "leaf", parent=child)
        services.run_delete_tag(run=child, key="mlflow.parentRunId")
        child.refresh_from_db()
        leaf.refresh_from_db()
        assert child.parent is None and child.depth == 0 and leaf.depth == 1
        assert tag(leaf, "mlflow.rootRunId") == child.run_id

    def test_a_cycle_is_refused_and_the_tree_left_as_it_was(self, experiment):
        root = create(experiment, "root")
        child = create(experiment, "child", parent=root)
        grandchild = create(experiment, "grandchild", parent=child)

        with pytest.raises(InvalidParameterValue, match="would make a cycle"):
            services.run_set_tag(run=root, key="mlflow.parentRunId", value=grandchild.run_id)
        with pytest.raises(InvalidParameterValue, match="cannot be its own parent"):
            services.run_set_tag(run=root, key="mlflow.parentRunId", value=root.run_id)

        root.refresh_from_db()
        assert root.parent is None and tag(root, "mlflow.parentRunId") is None
        assert set(Run.objects.subtree_of(root)) == {root, child, grandchild}

    def test_a_parent_in_another_experiment_is_refused(self, experiment):
        other = services.experiment_create(name="elsewhere")
        foreign = create(other, "foreign")
        with pytest.raises(InvalidParameterValue, match="a run tree lives in one experiment"):
            create(experiment, "child", parent=foreign)


class TestParentMissing:
    def test_a_child_whose_parent_is_unknown_is_a_root_marked_parent_missing(self, experiment):
        orphan = create(experiment, "orphan", parent="a" * 32)
        assert orphan.parent is None and orphan.parent_missing
        assert orphan in Run.objects.in_experiment(experiment).roots()

    def test_it_attaches_with_its_subtree_when_the_parent_arrives(self, experiment):
        parent_id = "b" * 32
        orphan = create(experiment, "orphan", parent=parent_id)
        orphan_child = create(experiment, "orphan-child", parent=orphan)

        parent = create(experiment, "late parent", run_id=parent_id)

        orphan.refresh_from_db()
        orphan_child.refresh_from_db()
        assert orphan.parent == parent and not orphan.parent_missing
        assert list(Run.objects.ancestors_of(orphan_child)) == [parent, orphan]
        assert orphan_child.depth == 2
        assert tag(orphan_child, "mlflow.rootRunId") == parent_id
