from __future__ import annotations

from django.core.management.base import BaseCommand

from lesions.analysis import requeue_stuck_analyses


class Command(BaseCommand):
    help = "Re-enqueue analyses stuck in queued/running past ANALYSIS_STUCK_AFTER_SECONDS (the beat task does this too)."

    def handle(self, *args, **options) -> None:
        ids = requeue_stuck_analyses()
        self.stdout.write(f"requeued {len(ids)} analysis(es): {ids}")
