"""Ties in a query's sort keys, made to come back in an order other than the one the query must fix.

A query whose ORDER BY stops short of a unique key returns tied rows in whatever order its plan
reads them: index order on a small test table, where an index happens to carry the tie-break, or
table (heap) order after a sequential scan. Either can agree with the intended order by chance, and
a test then passes without the tie-break it is meant to hold. These helpers take both chances away
on PostgreSQL: index scans are switched off for the test's transaction, and rows are rewritten (an
UPDATE writes a new row version, usually after the others) until the table holds them in neither
id order nor its reverse. On SQLite they do nothing: a table there is read in rowid order.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection
from django.db.models import F, Model


def read_in_table_order(*, grouping_by_hash: bool = False) -> None:
    """Plans for the rest of the test's transaction read tables sequentially, so tied rows come in
    table order unless the query orders them itself. ``grouping_by_hash`` also steers GROUP BY to
    hashing, whose output order is not the grouped key's (a sorted GROUP BY on the id would hand
    the final sort its rows in id order)."""
    if connection.vendor != "postgresql":
        return
    settings = ["enable_indexscan", "enable_indexonlyscan", "enable_bitmapscan"]
    if grouping_by_hash:
        settings.append("enable_sort")
    with connection.cursor() as cursor:
        for setting in settings:
            cursor.execute(f"SET LOCAL {setting} = off")


def table_order(rows: Sequence[Model]) -> list[int]:
    """The primary keys of ``rows`` in the order a sequential scan reads them."""
    model = type(rows[0])
    table, column = model._meta.db_table, model._meta.pk.column
    if connection.vendor != "postgresql":
        return sorted(row.pk for row in rows)
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT "{column}" FROM "{table}" WHERE "{column}" = ANY(%s) ORDER BY ctid',
                       [[row.pk for row in rows]])
        return [pk for (pk,) in cursor.fetchall()]


def scramble_table_order(rows: Sequence[Model]) -> list[int]:
    """Rewrite ``rows`` (at least three) until a sequential scan reads their middle id first: then
    the table holds them in neither id order nor its reverse, and a query that takes the first row
    read gets neither the lowest nor the highest id. Returns the order a scan reads them in."""
    ids = sorted(row.pk for row in rows)
    if connection.vendor != "postgresql":
        return ids
    model = type(rows[0])
    key = model._meta.pk.attname
    for _ in range(60):
        order = table_order(rows)
        if order[0] == ids[len(ids) // 2]:
            return order
        model.objects.filter(pk=order[0]).update(**{key: F(key)})
    raise AssertionError(f"{model.__name__} rows {ids} cannot be rewritten out of id order")
