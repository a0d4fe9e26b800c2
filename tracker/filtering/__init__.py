"""The filter language (MLflow's search_runs grammar plus OR, parentheses and `summary.`) and
MLflow's experiment filter, compiled to `Q` and ORDER BY expressions.

ast.py (vocabulary, nodes, FilterError) -> lexer.py -> parser.py (text -> AST) -> compiler.py
(AST -> Q on Run, through lookups.py: the one operator -> Q mapping) ; ordering.py (order_by
for runs) ; paging.py (sorted pages by keyset) ; experiments.py (search_experiments' filter and
order_by, on the run filter's lexer, operator reading and lookups.py) ; logged_models.py.
"""

from tracker.filtering.ast import FilterError
from tracker.filtering.compiler import compile_filter
from tracker.filtering.experiments import experiment_filter, experiment_ordering
from tracker.filtering.ordering import order_by_expressions, order_runs
from tracker.filtering.paging import sorted_page
from tracker.filtering.parser import parse_filter

__all__ = [
    "FilterError",
    "compile_filter",
    "experiment_filter",
    "experiment_ordering",
    "order_by_expressions",
    "order_runs",
    "parse_filter",
    "sorted_page",
]
