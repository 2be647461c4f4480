from __future__ import annotations

import csv
import json
import sys
from datetime import date, datetime, time, timedelta

from django.core.management.base import BaseCommand
from django.utils import timezone

from clinic.csv_cells import safe_row
from clinic.models import AuditEvent

COLUMNS = ["at", "username", "action", "object_type", "object_id", "object_repr", "clinic_id", "ip_address", "detail"]


def row_of(event: AuditEvent) -> list[object]:
    return [event.at.isoformat() if c == "at" else json.dumps(event.detail) if c == "detail" else getattr(event, c)
            for c in COLUMNS]


class Command(BaseCommand):
    help = "Export the audit trail for a date range (inclusive) as CSV."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--from", dest="start", type=date.fromisoformat, required=True)
        parser.add_argument("--to", dest="end", type=date.fromisoformat, required=True)
        parser.add_argument("--output", help="file to write (default: standard output)")

    def handle(self, *args, start: date, end: date, output: str | None, **options) -> None:
        tz = timezone.get_current_timezone()
        lo = timezone.make_aware(datetime.combine(start, time.min), tz)
        hi = timezone.make_aware(datetime.combine(end + timedelta(days=1), time.min), tz)
        events = AuditEvent.objects.filter(at__gte=lo, at__lt=hi).order_by("at", "id")
        handle = open(output, "w", newline="") if output else sys.stdout
        try:
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            for event in events.iterator():
                writer.writerow(safe_row(row_of(event)))
        finally:
            if output:
                handle.close()
