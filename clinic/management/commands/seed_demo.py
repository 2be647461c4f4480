"""Create a demo clinic and clinician (and an admin) for a first run; prints the logins."""

from __future__ import annotations

import os

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from clinic.models import Clinic
from clinic.services import clinician_add

DEMO_USERNAME = "demo"
DEMO_ADMIN = "admin"


class Command(BaseCommand):
    help = "Create the demo clinic, a demo clinician and an admin (idempotent) and print their logins."

    def handle(self, *args, **options) -> None:
        if settings.PRODUCTION:
            # A known login and a superuser with a default password have no place in production.
            raise CommandError("seed_demo refuses to run with production settings (it creates a superuser "
                               "with a known password). Create real accounts with createsuperuser.")
        password = os.environ.get("DEMO_PASSWORD", "demo-lesiontrack")
        User = get_user_model()
        clinic, _ = Clinic.objects.get_or_create(name="Demo Dermatology Clinic")
        user, created = User.objects.get_or_create(username=DEMO_USERNAME,
                                                   defaults={"first_name": "Demo", "last_name": "Clinician"})
        if created:
            user.set_password(password)
            user.save()
        clinician_add(user=user, clinic=clinic)
        admin, admin_created = User.objects.get_or_create(username=DEMO_ADMIN,
                                                          defaults={"is_staff": True, "is_superuser": True})
        if admin_created:
            admin.set_password(password)
            admin.save()
        clinician_add(user=admin, clinic=clinic)
        state = "created" if created else "already present"
        self.stdout.write(self.style.SUCCESS(
            f"Demo clinic '{clinic.name}' {state}.\n"
            f"  Clinician login: {DEMO_USERNAME} / {password if created else '(unchanged)'}\n"
            f"  Admin login:     {DEMO_ADMIN} / {password if admin_created else '(unchanged)'}"))
