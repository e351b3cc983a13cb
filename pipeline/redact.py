"""Transitional: the redaction rules live in textbook_api.redaction (the API needs them too)."""

from textbook_api.redaction import MASK, Redactor, mask_url_password, secret_values

__all__ = ["MASK", "Redactor", "mask_url_password", "secret_values"]
