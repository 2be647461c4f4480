"""A paginator told its count, for lists whose count stops at a cap."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db.models import QuerySet


class CountedPaginator(Paginator):
    """A Paginator given how many rows to page over (a capped count: clinic.selectors.count_up_to),
    so that it does not count every row again, as Django's Paginator does on each page view."""

    def __init__(self, object_list: QuerySet, per_page: int, *, count: int) -> None:
        super().__init__(object_list, per_page)
        self.count = count  # Paginator.count is a cached_property: set here, it is never computed
