"""The training database: every run, all of its attributes, and fast questions about them."""

from store.bulk import load_runs
from store.crash_reports import record_crash_report_object
from store.database import configure, configure_replica, get_engine
from store.filters import FilterError, compile_filter
from store.history import DEFAULT_POLICY, HistoryPolicy
from store.history_queries import get_history, get_run_history
from store.migrate import init_db
from store.objectives import (
    compare_gradient_methods,
    delete_run_objectives,
    get_objective_statistics,
    get_objectives_of_runs,
    get_run_objectives,
    insert_objective,
    query_runs_by_objectives,
    update_objective_metric,
)
from store.query import get_stats, iter_runs, query_runs
from store.runs import (
    attach_blog_post,
    attach_conversation,
    attach_crash_data,
    get_run,
    insert_run,
    mark_crashed,
    record_progress,
    unit_of_work,
    update_run_status,
    utcnow,
)
from store.scaffolds import (
    find_runs_with_scaffold,
    get_run_molecules,
    get_run_scaffolds,
    query_scaffolds,
    record_molecules,
    scaffold_diversity,
    scaffold_svg,
)
from store.stalled import configure_stale_after, is_stalled, stale_after_seconds
from store.wandb_runs import (
    advance_wandb_sync_cursor,
    upsert_wandb_run,
    wandb_history_lines,
    wandb_sync_cursor,
)

__all__ = [
    "attach_blog_post",
    "attach_conversation",
    "attach_crash_data",
    "compare_gradient_methods",
    "configure",
    "configure_replica",
    "configure_stale_after",
    "compile_filter",
    "delete_run_objectives",
    "FilterError",
    "DEFAULT_POLICY",
    "HistoryPolicy",
    "get_history",
    "get_run_history",
    "get_engine",
    "get_objective_statistics",
    "get_objectives_of_runs",
    "get_run",
    "get_run_objectives",
    "get_stats",
    "init_db",
    "insert_objective",
    "insert_run",
    "is_stalled",
    "iter_runs",
    "load_runs",
    "mark_crashed",
    "query_runs",
    "query_runs_by_objectives",
    "record_crash_report_object",
    "record_molecules",
    "record_progress",
    "find_runs_with_scaffold",
    "get_run_molecules",
    "get_run_scaffolds",
    "query_scaffolds",
    "scaffold_diversity",
    "scaffold_svg",
    "stale_after_seconds",
    "update_objective_metric",
    "unit_of_work",
    "update_run_status",
    "upsert_wandb_run",
    "utcnow",
    "wandb_history_lines",
    "wandb_sync_cursor",
    "advance_wandb_sync_cursor",
]
