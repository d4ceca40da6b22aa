"""Intermediates loaded from the site tables: the ingredient tree and recipe volumes."""
