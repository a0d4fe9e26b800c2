"""Best-child summaries: for each parent and metric, the best descendant and the spread of its children.

How a summary stays fresh:

1. A write to a run (tracker/services/) marks its parent `summary_stale` inside the write's
   transaction (staleness.py), and after commit queues one refresh per tree (tracker/tasks.py),
   coalesced through the root's `summary_queued` flag: a burst of writes into one tree queues
   one task while that task waits or runs, not one per write.
2. `tracker.tasks.refresh_tree` recomputes the tree's stale runs deepest first (refresh.py).
   Each run is claimed with a conditional update inside its own transaction: two workers never
   compute one run at once, and a worker killed mid-way leaves the run stale rather than
   half-done. The same transaction marks the run's parent stale, so staleness climbs to the
   root one level at a time, and a parent computed by another worker from this run's old
   summary never stays so.
3. `tracker.tasks.repair_stale_summaries` (beat) re-queues every tree still holding stale runs.

A summary is recomputed from the data, never incremented (computation.py), so computing it
twice is harmless. reads.py serves the pages and the APIs.

Imports run one way: staleness, refresh and computation never import tracker/tasks.py; the
tasks import them.
"""
