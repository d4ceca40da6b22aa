"""The graph fixtures (real Postgres, stores) for the spaces tests."""

from tests.cocktail_assets.graph.conftest import local_target, sample_db_url  # noqa: F401
