"""Seed a realistic large clinic for the benchmarks (see bench.seeding)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from bench.seeding import seed_clinic

DEFAULT_DATA = Path(settings.BASE_DIR).parent / "shared" / "data" / "lesions-dev"


class Command(BaseCommand):
    help = ("Create a large clinic (patients, lesions with 1 to 20 captures, done analyses with full feature "
            "records, assessments, histopathology, audit trail) with COPY.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--patients", type=int, default=20_000)
        parser.add_argument("--lesions", type=int, default=60_000)
        parser.add_argument("--captures", type=int, default=200_000)
        parser.add_argument("--clinic", default="Benchmark Clinic")
        parser.add_argument("--username", default="bench")
        parser.add_argument("--password", default="bench-lesiontrack")
        parser.add_argument("--images", type=int, default=6, help="distinct stored images to share")
        parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                            help="dataset folder with images/*.jpg (default ../shared/data/lesions-dev); "
                                 "synthetic images when it is absent")

    def handle(self, *args, patients: int, lesions: int, captures: int, clinic: str, username: str, password: str,
               images: int, data: Path, **options) -> None:
        if not (data / "images").is_dir():
            self.stderr.write(f"note: no images under {data}; seeding with synthetic images")
        try:
            report = seed_clinic(patients=patients, lesions=lesions, captures=captures, data_dir=data,
                                 clinic_name=clinic, username=username, password=password, images=images,
                                 log=self.stdout.write)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(
            f"seeded {report.patients} patients, {report.lesions} lesions, {report.captures} captures with analyses, "
            f"{report.histopathology} histopathology reports, {report.audit_events} audit events in "
            f"{report.seconds:.1f} s; login {username} / {password}"))
