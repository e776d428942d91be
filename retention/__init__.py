"""Retention: the selection list, signature upkeep as new AIP versions and, later, holds,
disposal and destruction evidence."""

from retention.errors import (
    InvalidSelectionListError,
    RenewalConflictError,
    RenewalRejectedError,
    RetentionError,
)
from retention.selection_list import RetentionRule, SelectionList, load_selection_list
from retention.upkeep import renew_document

__all__ = [
    "InvalidSelectionListError",
    "RenewalConflictError",
    "RenewalRejectedError",
    "RetentionError",
    "RetentionRule",
    "SelectionList",
    "load_selection_list",
    "renew_document",
]
