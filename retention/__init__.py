"""Retention: the selection list and, later, holds, disposal and destruction evidence."""

from retention.errors import InvalidSelectionListError, RetentionError
from retention.selection_list import RetentionRule, SelectionList, load_selection_list

__all__ = [
    "InvalidSelectionListError",
    "RetentionError",
    "RetentionRule",
    "SelectionList",
    "load_selection_list",
]
