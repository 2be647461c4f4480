"""Lesions, captures, analyses and histopathology over the REST API (shared parts in clinic.api)."""
