"""A paginator whose count stops at a cap, for lists that grow with the clinic."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.utils.functional import cached_property

from clinic.selectors import count_up_to


class CappedPaginator(Paginator):
    """Pages over at most `cap` rows, counted with clinic.selectors.count_up_to; `more` says that
    further rows match beyond them. Django's Paginator counts every row on each page view."""

    def __init__(self, object_list: QuerySet, per_page: int, cap: int) -> None:
        super().__init__(object_list, per_page)
        self.cap = cap

    @cached_property
    def _counted(self) -> int:
        return count_up_to(self.object_list, self.cap)

    @cached_property
    def count(self) -> int:
        return min(self._counted, self.cap)

    @property
    def more(self) -> bool:
        return self._counted > self.cap
