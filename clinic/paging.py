"""A paginator whose count stops at a cap, for lists that grow with the clinic."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db.models import QuerySet


class CappedPaginator(Paginator):
    """Pages over at most `cap` rows, given how many match counted up to cap + 1 (as
    clinic.selectors.count_up_to counts); `more` says that further rows match beyond them.
    Django's Paginator counts every row on each page view."""

    def __init__(self, object_list: QuerySet, per_page: int, *, cap: int, counted: int) -> None:
        super().__init__(object_list, per_page)
        self.cap = cap
        self.count = min(counted, cap)  # Paginator.count is a cached_property: set, it is not counted again
        self.more = counted > cap
