"""The rule engine: pure functions over plain dicts that decide whether a VM may live-migrate."""

from webhook.rules.engine import evaluate_migration
from webhook.rules.model import NodeVerdict, Problem, Report, Timeouts, TimeoutSettings
from webhook.rules.target import migration_target
from webhook.rules.timeouts import compute_timeouts

__all__ = [
    "NodeVerdict",
    "Problem",
    "Report",
    "TimeoutSettings",
    "Timeouts",
    "compute_timeouts",
    "evaluate_migration",
    "migration_target",
]
