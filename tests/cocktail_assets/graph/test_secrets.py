"""The database password never reaches a log line, an event or materialization metadata."""

from __future__ import annotations

import dagster as dg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from cocktail_assets.db.connection import as_url
from cocktail_assets.resources.database import CocktailDatabase
from tests.cocktail_assets.graph.conftest import materialize_graph

# The test server trusts local logins, so any password connects: a marker we can search for.
PASSWORD = "pw-3f1c9e-must-not-leak"


def test_password_is_in_no_event_of_the_run(sample_db_url: str, local_target) -> None:
    with_password = as_url(make_conninfo(sample_db_url, password=PASSWORD))
    store, _ = local_target
    instance = dg.DagsterInstance.ephemeral()
    result = materialize_graph(with_password, store, instance=instance)
    assert result.success
    records = instance.all_logs(result.run_id)
    assert len(records) > 20
    leaked = [r for r in records if PASSWORD in dg.serialize_value(r)]
    assert not leaked, leaked[0]


def test_discrete_settings_connect_and_describe_without_password(sample_db_url: str) -> None:
    params = conninfo_to_dict(sample_db_url)
    database = CocktailDatabase(
        host=params["host"], port=int(params.get("port") or 5432), dbname=params["dbname"],
        user=params.get("user"), password=PASSWORD,
    )
    with database.connect() as conn:
        assert conn.execute("SELECT count(*) > 100 FROM recipes").fetchone() == (True,)
    assert PASSWORD not in database.describe()
    assert params["dbname"] in database.describe()
