"""Reads scoped to what a clinician may see: their own clinics' records, else 404."""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import BooleanField, Count, F, Func, Q, QuerySet, TextField, Value
from django.shortcuts import get_object_or_404

from clinic.models import Clinic, DataGeneration, Membership, Patient
from clinic.page_cache import cached_under

logger = logging.getLogger("clinic.selectors")


def clinics_for(user: AbstractBaseUser) -> QuerySet[Clinic]:
    return Clinic.objects.filter(memberships__user=user)


def clinic_ids_for(user: AbstractBaseUser) -> list[int]:
    cached = getattr(user, "_clinic_ids", None)
    if cached is None:
        cached = list(clinics_for(user).values_list("id", flat=True))
        user._clinic_ids = cached
    return cached


def member_clinic_ids(user: AbstractBaseUser) -> list[int] | QuerySet[Membership]:
    """The user's clinic ids for checking one record's clinic: the list this request has read
    already, else a subquery, so that the check and the record are one query (every case, patient
    and image request makes this check; the pages it guards are otherwise served from a cache)."""
    cached = getattr(user, "_clinic_ids", None)
    return cached if cached is not None else Membership.objects.filter(user=user).values("clinic_id")


def data_generation(clinic_id: int) -> int | None:
    """The clinic's data generation (clinic.models.DataGeneration): it grows with every committed
    write to the clinic's records, so a page cached under it is never shown after a change. None
    where no triggers keep it (SQLite, or a PostgreSQL database where one is missing or disabled:
    see missing_generation_triggers): nothing may be cached under it there.

    Read it before reading the records a cached page is built from: a write committed in between
    then leaves fresher records under the older key, never older records under the newer one.
    The sum over all slots: each transaction counts in whichever slot it could lock."""
    generations = data_generations([clinic_id])
    return None if generations is None else generations[0]


def data_generations(clinic_ids: Sequence[int]) -> tuple[int, ...] | None:
    """data_generation of each clinic, in the order given, read in one query; None as there, and
    for no clinic at all (nothing may be kept under an empty stamp)."""
    if not clinic_ids or connection.vendor != "postgresql" or missing_generation_triggers():
        return None
    # Written out: every kept page reads it, and the ORM's compiling of this one grouped sum took
    # longer than the query (about 0.65 of 1.05 ms on a 2-core VM).
    table = connection.ops.quote_name(DataGeneration._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT clinic_id, SUM(generation)::bigint FROM {table} "  # noqa: S608 - the model's own table
                       "WHERE clinic_id = ANY(%s) GROUP BY clinic_id", [list(clinic_ids)])
        totals = dict(cursor.fetchall())
    return tuple(totals.get(clinic_id, 0) for clinic_id in clinic_ids)


@cache
def missing_generation_triggers() -> tuple[str, ...]:
    """The data generation triggers (DataGeneration.TRIGGERED_TABLES) that are absent or disabled,
    checked once per process. Without one, writes to its table would leave the generation, and so
    a cached page, unchanged: a restore without triggers, `ALTER TABLE ... DISABLE TRIGGER`. ENABLE
    ALWAYS ('A') fires in ordinary sessions as ENABLE ('O') does; replica-only ('R') does not."""
    expected = [(table, f"{table}_{event}") for table in DataGeneration.TRIGGERED_TABLES
                for event in ("inserted", "updated", "deleted")]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE t.tgrelid IN (SELECT to_regclass(name) FROM unnest(%s::text[]) AS name) "
            "AND t.tgenabled IN ('O', 'A')", [list(DataGeneration.TRIGGERED_TABLES)])
        enabled = set(cursor.fetchall())
    missing = tuple(trigger for table, trigger in expected if (table, trigger) not in enabled)
    if missing:
        logger.warning("data generation triggers missing or disabled, no page is cached: %s",
                       ", ".join(missing))
    return missing


class PatientSearchText(Func):
    """`identifier || ' ' || name`: on PostgreSQL, UPPER() of it carries the trigram index
    patient_search_trgm (clinic migration 0003). The SQL must stay exactly this for the index to serve."""

    template = "(%(expressions)s)"
    arg_joiner = " || ' ' || "
    output_field = TextField()


class PatientSearchMatches(Func):
    """The identifier starts with the query or the name contains it, both ignoring case: the SQL
    function of clinic migration 0008, which the planner estimates as one opaque condition."""

    function = "patient_search_matches"
    output_field = BooleanField()


def patients_for(user: AbstractBaseUser, query: str = "", *, common_name: bool = False) -> QuerySet[Patient]:
    """The user's clinics' patients in name order, those a search finds where there is a query.
    `common_name`: the query is known to match many of them (see patient_search)."""
    patients = Patient.objects.filter(clinic_id__in=clinic_ids_for(user)).select_related("clinic")
    query = query.strip()
    if query:
        # The first condition is implied by the second (an identifier that starts with the query, or a
        # name that contains it, puts the query inside "identifier name"); it is there because one
        # trigram index serves it for common and rare names alike, where the OR of two indexes lost
        # to a sequential scan of the clinic.
        patients = (patients.alias(search_text=PatientSearchText(F("identifier"), F("name")))
                    .filter(search_text__icontains=query))
        if common_name and connection.vendor == "postgresql":
            patients = patients.filter(PatientSearchMatches(F("identifier"), F("name"), Value(query)))
        else:
            patients = patients.filter(Q(identifier__istartswith=query) | Q(name__icontains=query))
    return patients.order_by("name", "id")


# A search for a common name in a clinic ten times our benchmark's size matched 9,926 patients:
# counting every match made the search page grow with the clinic. Past this many matches the list
# says "more than" and asks for a narrower search instead of counting on.
SEARCH_MATCH_CAP = 500
SEARCH_CACHE = "searches"  # settings.CACHES: kept counts and pages (clinic.presentation.patient_search_page)
# A kept search's key carries a keyed hash of the search text: a plain hash of a surname is reversed
# from a list of surnames. Per process, as the cache is.
_SEARCH_KEY_SECRET = secrets.token_bytes(16)


def capped_rows(queryset: QuerySet, cap: int) -> QuerySet:
    """The first cap + 1 rows' keys, in no order: what count_up_to counts."""
    return queryset.order_by().values("pk")[: cap + 1]


def count_up_to(queryset: QuerySet, cap: int) -> int:
    """The number of rows, but no more than cap + 1 (one more tells that the cap was passed). The
    database stops fetching rows after that many; an index it reads them through (the trigram
    index's bitmap) may still list every match, which costs far less than fetching them."""
    return capped_rows(queryset, cap).count()


@dataclass(frozen=True)
class PatientSearch:
    """What a patient search found: the patients to page through and how many matched."""

    patients: QuerySet[Patient]  # in name order
    matched: int  # how many match, counted up to cap + 1
    cap: int

    @property
    def more(self) -> bool:
        """More than `cap` patients match."""
        return self.matched > self.cap

    @property
    def listed(self) -> int:
        """How many of them the list offers: all, or the first `cap`."""
        return min(self.matched, self.cap)


def patient_search(user: AbstractBaseUser, query: str, cap: int | None = None, *,
                   stamp: tuple[object, ...] | None = None) -> PatientSearch:
    """The patients a search finds and how many, read the way that suits how many match in the
    user's clinics.

    Up to `cap` (SEARCH_MATCH_CAP): the exact condition as two LIKEs, which the planner takes for
    rare, so it reads every match through the trigram index and sorts them, `cap` rows at most.
    Past it, a common name: the exact condition as one function (clinic migration 0008), which lets
    the planner see that the name is common and walk the (clinic, name, id) index until a page is
    full, instead of reading and sorting every match (9,926 for "Smith" at 200,000 patients). The
    count decides, not the planner's statistics, which are the whole table's: a name common in
    other clinics but rare in this one would otherwise walk this clinic's whole index. A user of
    several clinics keeps the two LIKEs: PostgreSQL 15 cannot walk that index in name order across
    several clinic ids, so the function would only add a call per match.

    The count is kept under `stamp` (search_stamp's, read now where not given)."""
    cap = SEARCH_MATCH_CAP if cap is None else cap
    stamp = search_stamp(user) if stamp is None else stamp
    patients = patients_for(user, query)
    # The search form's post counts the matches for its audit row; the result page it redirects to,
    # when served by the same web process, takes that count instead of counting again.
    matched = cached_under(search_key(user, query, "count", cap), stamp, lambda: count_up_to(patients, cap),
                           cache=SEARCH_CACHE)
    if matched > cap and len(clinic_ids_for(user)) == 1:
        patients = patients_for(user, query, common_name=True)
    return PatientSearch(patients, matched, cap)


def search_stamp(user: AbstractBaseUser) -> tuple[object, ...]:
    """What a kept search is valid under (clinic.page_cache.cached_under): the data generation of
    each of the user's clinics, as one item, so that the stamp starts with None, and nothing is
    kept, where any clinic has no generation (or the user has no clinic). Read before the records."""
    generations = data_generations(clinic_ids_for(user))
    return (None,) if generations is None else (generations,)


def search_key(user: AbstractBaseUser, query: str, *parts: object) -> str:
    """A search's cache key: a keyed hash of the user's clinics and the text (a fixed length, however
    many clinics), then `parts`."""
    clinics = ",".join(map(str, clinic_ids_for(user)))
    digest = hmac.new(_SEARCH_KEY_SECRET, f"{clinics}\n{query.strip()}".encode(), "sha256").hexdigest()[:32]
    return ":".join(["search", digest, *map(str, parts)])


def with_lesion_counts(patients: list[Patient]) -> list[Patient]:
    """Lesion counts for one page of patients in one query (counting before paginating would
    aggregate the whole clinic on every page view)."""
    counts = dict(Patient.objects.filter(pk__in=[p.pk for p in patients]).annotate(n=Count("lesions"))
                  .values_list("pk", "n"))
    for patient in patients:
        patient.lesion_count = counts.get(patient.pk, 0)
    return patients


def patient_for(user: AbstractBaseUser, pk: int) -> Patient:
    return get_object_or_404(Patient.objects.select_related("clinic"), pk=pk, clinic_id__in=member_clinic_ids(user))
