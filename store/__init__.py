"""The training database: every run, all of its attributes, and fast questions about them.

This module is the one door into the store: everything outside ``store/`` imports from here,
never from a module inside it, so those modules can be split and renamed freely.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from store.analyses import DEFAULT_KEPT as DEFAULT_MOLECULE_ANALYSES_KEPT
    from store.analyses import configure_kept as configure_molecule_analyses_kept
    from store.bulk import load_runs
    from store.copy import CopyFailed, copy_database
    from store.crash_reports import record_crash_report_object
    from store.database import (
        DatabaseUnavailable,
        autovacuum_off,
        configure,
        configure_replica,
        deterministic,
        get_engine,
        normalize_url,
        plan_statements_once,
        read_transaction,
        schema_missing,
        sqlite_file,
        unavailable_as_error,
    )
    from store.database import (
        location as database_location,
    )
    from store.event_warnings import collecting as collecting_warnings
    from store.extract import FINAL_STATUSES as FINAL_RUN_STATUSES
    from store.extract import OBJECTIVE_COLUMNS
    from store.extract import STATUSES as RUN_STATUSES
    from store.fields import DOCUMENTS, SCALAR_COLUMNS, SCALAR_TYPES
    from store.fields import resolve as resolve_field
    from store.filters import FilterError, compile_filter
    from store.history import DEFAULT_POLICY as DEFAULT_HISTORY_POLICY
    from store.history import HistoryPolicy
    from store.history_queries import LiveState, get_history, get_live_states, get_run_history
    from store.inbox import (
        REPLAYABLE as REPLAYABLE_STATUSES,
    )
    from store.inbox import (
        Delivery,
        get_delivery,
        list_deliveries,
        oldest_pending_age,
        record_delivery,
    )
    from store.inbox import (
        archive_batch as archive_deliveries,
    )
    from store.inbox import (
        claim as claim_deliveries,
    )
    from store.inbox import (
        counts as inbox_counts,
    )
    from store.inbox import (
        finish as finish_deliveries,
    )
    from store.inbox import (
        page_events as page_deliveries,
    )
    from store.inbox import (
        refusal as delivery_refusal,
    )
    from store.inbox import (
        release as release_deliveries,
    )
    from store.inbox import (
        renew as renew_deliveries,
    )
    from store.inbox import (
        requeue_ids as requeue_deliveries,
    )
    from store.inbox import (
        retry_later as retry_deliveries_later,
    )
    from store.inbox import (
        set_status as set_delivery_status,
    )
    from store.inbox import (
        statistics as inbox_statistics,
    )
    from store.inbox import (
        still_held as deliveries_still_held,
    )
    from store.jsoncodec import has_nul_escape
    from store.locking import unit_of_work
    from store.migrate import (
        current_revision,
        head_revision,
        init_db,
        schema_is_current,
    )
    from store.migrate import (
        upgrade as upgrade_schema,
    )
    from store.objectives import (
        RESULT_COLUMNS,
        compare_gradient_methods,
        delete_run_objectives,
        get_objective_statistics,
        get_objectives_of_runs,
        get_run_objectives,
        insert_objective,
        query_runs_by_objectives,
        update_objective_metric,
    )
    from store.query import get_run, get_stats, iter_runs, query_runs
    from store.reads import (
        MAX_LIMIT as MAX_PAGE_LIMIT,
    )
    from store.reads import (
        METRICS as COMPARE_METRICS,
    )
    from store.reads import (
        compare_groups,
        list_objectives,
        page_runs,
        run_detail,
        run_stats,
        stream_runs,
    )
    from store.reads import (
        pareto as pareto_runs,
    )
    from store.runs import (
        attach_blog_post,
        attach_conversation,
        attach_crash_data,
        insert_run,
        mark_crashed,
        record_progress,
        update_run_status,
    )
    from store.scaffolds import (
        CROSS_RUN_ORDERS as SCAFFOLD_CROSS_RUN_ORDERS,
    )
    from store.scaffolds import (
        MAX_TOP_PER_RUN as SCAFFOLD_MAX_TOP_PER_RUN,
    )
    from store.scaffolds import (
        RUN_ORDERS as SCAFFOLD_RUN_ORDERS,
    )
    from store.scaffolds import (
        TOP_ORDERS as SCAFFOLD_TOP_ORDERS,
    )
    from store.scaffolds import (
        analyse_molecules,
        find_runs_with_scaffold,
        get_run_molecules,
        get_run_scaffolds,
        load_rdkit,
        query_scaffolds,
        record_molecules,
        scaffold_diversity,
        scaffold_svg,
        top_scaffolds_of_runs,
    )
    from store.schema import INBOX_STATUSES, utcnow
    from store.stalled import configure_stale_after, is_stalled, stale_after_seconds
    from store.wandb_runs import (
        advance_wandb_sync_cursor,
        upsert_wandb_run,
        wandb_history_lines,
        wandb_sync_cursor,
    )

# Each public name, the module that defines it and its name there. Loaded on first use (PEP 562):
# `import store` costs nothing, and a command that never touches the inbox or the chemistry never
# loads them (nor RDKit).
_API: dict[str, tuple[str, str]] = {
    "advance_wandb_sync_cursor": ("wandb_runs", "advance_wandb_sync_cursor"),
    "analyse_molecules": ("scaffolds", "analyse_molecules"),
    "archive_deliveries": ("inbox", "archive_batch"),
    "attach_blog_post": ("runs", "attach_blog_post"),
    "attach_conversation": ("runs", "attach_conversation"),
    "attach_crash_data": ("runs", "attach_crash_data"),
    "autovacuum_off": ("database", "autovacuum_off"),
    "claim_deliveries": ("inbox", "claim"),
    "collecting_warnings": ("event_warnings", "collecting"),
    "compare_gradient_methods": ("objectives", "compare_gradient_methods"),
    "compare_groups": ("reads", "compare_groups"),
    "COMPARE_METRICS": ("reads", "METRICS"),
    "compile_filter": ("filters", "compile_filter"),
    "configure": ("database", "configure"),
    "configure_replica": ("database", "configure_replica"),
    "copy_database": ("copy", "copy_database"),
    "CopyFailed": ("copy", "CopyFailed"),
    "current_revision": ("migrate", "current_revision"),
    "database_location": ("database", "location"),
    "DatabaseUnavailable": ("database", "DatabaseUnavailable"),
    "delete_run_objectives": ("objectives", "delete_run_objectives"),
    "deliveries_still_held": ("inbox", "still_held"),
    "Delivery": ("inbox", "Delivery"),
    "delivery_refusal": ("inbox", "refusal"),
    "deterministic": ("database", "deterministic"),
    "DOCUMENTS": ("fields", "DOCUMENTS"),
    "FilterError": ("filters", "FilterError"),
    "find_runs_with_scaffold": ("scaffolds", "find_runs_with_scaffold"),
    "finish_deliveries": ("inbox", "finish"),
    "get_delivery": ("inbox", "get_delivery"),
    "get_engine": ("database", "get_engine"),
    "get_objective_statistics": ("objectives", "get_objective_statistics"),
    "get_objectives_of_runs": ("objectives", "get_objectives_of_runs"),
    "get_run": ("query", "get_run"),
    "get_run_molecules": ("scaffolds", "get_run_molecules"),
    "get_run_objectives": ("objectives", "get_run_objectives"),
    "get_run_scaffolds": ("scaffolds", "get_run_scaffolds"),
    "get_stats": ("query", "get_stats"),
    "has_nul_escape": ("jsoncodec", "has_nul_escape"),
    "head_revision": ("migrate", "head_revision"),
    "inbox_counts": ("inbox", "counts"),
    "inbox_statistics": ("inbox", "statistics"),
    "INBOX_STATUSES": ("schema", "INBOX_STATUSES"),
    "init_db": ("migrate", "init_db"),
    "insert_objective": ("objectives", "insert_objective"),
    "insert_run": ("runs", "insert_run"),
    "iter_runs": ("query", "iter_runs"),
    "list_deliveries": ("inbox", "list_deliveries"),
    "list_objectives": ("reads", "list_objectives"),
    "load_runs": ("bulk", "load_runs"),
    "mark_crashed": ("runs", "mark_crashed"),
    "MAX_PAGE_LIMIT": ("reads", "MAX_LIMIT"),
    "normalize_url": ("database", "normalize_url"),
    "OBJECTIVE_COLUMNS": ("extract", "OBJECTIVE_COLUMNS"),
    "oldest_pending_age": ("inbox", "oldest_pending_age"),
    "page_deliveries": ("inbox", "page_events"),
    "page_runs": ("reads", "page_runs"),
    "pareto_runs": ("reads", "pareto"),
    "load_rdkit": ("scaffolds", "load_rdkit"),
    "plan_statements_once": ("database", "plan_statements_once"),
    "query_runs": ("query", "query_runs"),
    "query_runs_by_objectives": ("objectives", "query_runs_by_objectives"),
    "query_scaffolds": ("scaffolds", "query_scaffolds"),
    "read_transaction": ("database", "read_transaction"),
    "record_crash_report_object": ("crash_reports", "record_crash_report_object"),
    "record_delivery": ("inbox", "record_delivery"),
    "record_molecules": ("scaffolds", "record_molecules"),
    "record_progress": ("runs", "record_progress"),
    "release_deliveries": ("inbox", "release"),
    "renew_deliveries": ("inbox", "renew"),
    "REPLAYABLE_STATUSES": ("inbox", "REPLAYABLE"),
    "requeue_deliveries": ("inbox", "requeue_ids"),
    "resolve_field": ("fields", "resolve"),
    "RESULT_COLUMNS": ("objectives", "RESULT_COLUMNS"),
    "retry_deliveries_later": ("inbox", "retry_later"),
    "run_detail": ("reads", "run_detail"),
    "run_stats": ("reads", "run_stats"),
    "RUN_STATUSES": ("extract", "STATUSES"),
    "SCAFFOLD_CROSS_RUN_ORDERS": ("scaffolds", "CROSS_RUN_ORDERS"),
    "scaffold_diversity": ("scaffolds", "scaffold_diversity"),
    "SCAFFOLD_MAX_TOP_PER_RUN": ("scaffolds", "MAX_TOP_PER_RUN"),
    "SCAFFOLD_RUN_ORDERS": ("scaffolds", "RUN_ORDERS"),
    "SCAFFOLD_TOP_ORDERS": ("scaffolds", "TOP_ORDERS"),
    "scaffold_svg": ("scaffolds", "scaffold_svg"),
    "SCALAR_COLUMNS": ("fields", "SCALAR_COLUMNS"),
    "SCALAR_TYPES": ("fields", "SCALAR_TYPES"),
    "schema_is_current": ("migrate", "schema_is_current"),
    "schema_missing": ("database", "schema_missing"),
    "set_delivery_status": ("inbox", "set_status"),
    "sqlite_file": ("database", "sqlite_file"),
    "stream_runs": ("reads", "stream_runs"),
    "top_scaffolds_of_runs": ("scaffolds", "top_scaffolds_of_runs"),
    "unavailable_as_error": ("database", "unavailable_as_error"),
    "unit_of_work": ("locking", "unit_of_work"),
    "update_objective_metric": ("objectives", "update_objective_metric"),
    "update_run_status": ("runs", "update_run_status"),
    "upgrade_schema": ("migrate", "upgrade"),
    "upsert_wandb_run": ("wandb_runs", "upsert_wandb_run"),
    "utcnow": ("schema", "utcnow"),
    "wandb_sync_cursor": ("wandb_runs", "wandb_sync_cursor"),
    "DEFAULT_HISTORY_POLICY": ("history", "DEFAULT_POLICY"),
    "HistoryPolicy": ("history", "HistoryPolicy"),
    "get_history": ("history_queries", "get_history"),
    "get_run_history": ("history_queries", "get_run_history"),
    "get_live_states": ("history_queries", "get_live_states"),
    "LiveState": ("history_queries", "LiveState"),
    "wandb_history_lines": ("wandb_runs", "wandb_history_lines"),
    "configure_stale_after": ("stalled", "configure_stale_after"),
    "configure_molecule_analyses_kept": ("analyses", "configure_kept"),
    "DEFAULT_MOLECULE_ANALYSES_KEPT": ("analyses", "DEFAULT_KEPT"),
    "is_stalled": ("stalled", "is_stalled"),
    "stale_after_seconds": ("stalled", "stale_after_seconds"),
    "FINAL_RUN_STATUSES": ("extract", "FINAL_STATUSES"),
}
__all__ = [
    "FINAL_RUN_STATUSES",
    "configure_stale_after",
    "configure_molecule_analyses_kept",
    "DEFAULT_MOLECULE_ANALYSES_KEPT",
    "is_stalled",
    "stale_after_seconds",
    "DEFAULT_HISTORY_POLICY",
    "HistoryPolicy",
    "get_history",
    "get_run_history",
    "get_live_states",
    "LiveState",
    "wandb_history_lines",
    "advance_wandb_sync_cursor",
    "analyse_molecules",
    "archive_deliveries",
    "attach_blog_post",
    "attach_conversation",
    "attach_crash_data",
    "autovacuum_off",
    "claim_deliveries",
    "collecting_warnings",
    "compare_gradient_methods",
    "compare_groups",
    "COMPARE_METRICS",
    "compile_filter",
    "configure",
    "configure_replica",
    "copy_database",
    "CopyFailed",
    "current_revision",
    "database_location",
    "DatabaseUnavailable",
    "delete_run_objectives",
    "deliveries_still_held",
    "Delivery",
    "delivery_refusal",
    "deterministic",
    "DOCUMENTS",
    "FilterError",
    "find_runs_with_scaffold",
    "finish_deliveries",
    "get_delivery",
    "get_engine",
    "get_objective_statistics",
    "get_objectives_of_runs",
    "get_run",
    "get_run_molecules",
    "get_run_objectives",
    "get_run_scaffolds",
    "get_stats",
    "has_nul_escape",
    "head_revision",
    "inbox_counts",
    "inbox_statistics",
    "INBOX_STATUSES",
    "init_db",
    "insert_objective",
    "insert_run",
    "iter_runs",
    "list_deliveries",
    "list_objectives",
    "load_runs",
    "mark_crashed",
    "MAX_PAGE_LIMIT",
    "normalize_url",
    "OBJECTIVE_COLUMNS",
    "oldest_pending_age",
    "page_deliveries",
    "page_runs",
    "pareto_runs",
    "load_rdkit",
    "plan_statements_once",
    "query_runs",
    "query_runs_by_objectives",
    "query_scaffolds",
    "read_transaction",
    "record_crash_report_object",
    "record_delivery",
    "record_molecules",
    "record_progress",
    "release_deliveries",
    "renew_deliveries",
    "REPLAYABLE_STATUSES",
    "requeue_deliveries",
    "resolve_field",
    "RESULT_COLUMNS",
    "retry_deliveries_later",
    "run_detail",
    "run_stats",
    "RUN_STATUSES",
    "SCAFFOLD_CROSS_RUN_ORDERS",
    "scaffold_diversity",
    "SCAFFOLD_MAX_TOP_PER_RUN",
    "SCAFFOLD_RUN_ORDERS",
    "SCAFFOLD_TOP_ORDERS",
    "scaffold_svg",
    "SCALAR_COLUMNS",
    "SCALAR_TYPES",
    "schema_is_current",
    "schema_missing",
    "set_delivery_status",
    "sqlite_file",
    "stream_runs",
    "top_scaffolds_of_runs",
    "unavailable_as_error",
    "unit_of_work",
    "update_objective_metric",
    "update_run_status",
    "upgrade_schema",
    "upsert_wandb_run",
    "utcnow",
    "wandb_sync_cursor",
]


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _API[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(import_module(f"store.{module}"), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
