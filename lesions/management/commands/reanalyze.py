from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from lesions.models import Analysis, Capture
from lesions.services import current_model_version, reanalyze


class Command(BaseCommand):
    help = "Queue re-analysis of chosen captures with the current model version."

    def add_arguments(self, parser) -> None:
        parser.add_argument("capture_ids", nargs="*", type=int)
        parser.add_argument("--all-older", action="store_true",
                            help="every capture without a done analysis by the current model version")

    def handle(self, *args, capture_ids: list[int], all_older: bool, **options) -> None:
        version = current_model_version()
        if all_older:
            captures = Capture.objects.exclude(analyses__model_version=version, analyses__status=Analysis.Status.DONE)
        elif capture_ids:
            captures = Capture.objects.filter(pk__in=capture_ids)
        else:
            raise CommandError("name capture ids or use --all-older")
        queued = reanalyze(captures=captures.iterator(), model_version=version)
        self.stdout.write(f"queued {len(queued)} analysis(es) with model {version}")
