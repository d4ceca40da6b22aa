"""Dagster resources: the site database, the analytics store, the Batch step launcher."""
