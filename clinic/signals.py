"""Signals other apps answer. Clinic knows nothing of lesions; lesions listens here."""

from __future__ import annotations

from django.dispatch import Signal

# Sent inside the deletion's transaction with patient=...; each receiver returns the names of
# the stored files it will remove once that transaction commits.
patient_deleting = Signal()
