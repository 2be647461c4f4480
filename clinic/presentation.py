"""Parts of the clinic's pages that are rendered once and kept while what they show is unchanged
(as lesions.presentation does for the worklist and the case pages)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.core.paginator import Page
from django.template.loader import render_to_string

from clinic import selectors
from clinic.page_cache import cached_under
from clinic.paging import CountedPaginator

PATIENT_ROWS_TEMPLATE = "clinic/_patient_rows.html"


def patient_search_page(user: AbstractBaseUser, query: str, page_number: str | int | None,
                        per_page: int) -> tuple[selectors.PatientSearch, Page, str]:
    """One page of a patient search (or of the whole list, for an empty query) and its rendered
    table rows, each with the patient's lesion count.

    The count and each page's rows are kept in this process's search cache while the user's
    clinics and their records are unchanged: going back to the results after opening a patient,
    or paging back, neither searches nor reads the patients again. The first view after any write
    to the clinics or their records (a clinic's rename shows in the rows) searches again. On a kept
    page, `page.object_list` is the search's unread slice: the rows are what shows."""
    stamp = selectors.search_stamp(user)  # before the records: see selectors.data_generation
    search = selectors.patient_search(user, query, stamp=stamp)
    page = CountedPaginator(search.patients, per_page, count=search.listed).get_page(page_number)

    def rendered_rows() -> str:
        page.object_list = selectors.with_lesion_counts(list(page.object_list))
        return render_to_string(PATIENT_ROWS_TEMPLATE, {"page": page, "query": query})

    rows = cached_under(selectors.search_key(user, query, "rows", selectors.SEARCH_MATCH_CAP, per_page, page.number),
                        stamp, rendered_rows, cache=selectors.SEARCH_CACHE)
    return search, page, rows
