"""The REST API's shared parts (authentication, throttling, schema, base views) and the patient routes."""
