from __future__ import annotations

from django.core.management.base import BaseCommand

from lesions.orphans import reconcile


class Command(BaseCommand):
    help = ("List stored files against the database: remove files no row names once older than "
            "ORPHAN_GRACE_SECONDS (the hourly beat task does this too) and report rows whose file is missing.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="report only; remove nothing")
        parser.add_argument("--grace-seconds", type=int, default=None)
        parser.add_argument("--skip-row-check", action="store_true", help="do not check every row's file exists")

    def handle(self, *args, dry_run: bool, grace_seconds: int | None, skip_row_check: bool, **options) -> None:
        result = reconcile(grace_seconds=grace_seconds, remove=not dry_run, check_rows=not skip_row_check)
        verb = "would remove" if dry_run else "removed"
        self.stdout.write(f"{verb} {len(result.orphan_files)} orphan file(s)")
        for name in result.orphan_files:
            self.stdout.write(f"  {name}")
        self.stdout.write(f"kept {len(result.young_unreferenced)} unreferenced file(s) inside the grace period")
        self.stdout.write(f"{len(result.rows_missing_files)} row(s) name a missing file")
        for name in result.rows_missing_files:
            self.stdout.write(f"  missing: {name}")
