"""recipe_similarity's fast path against the plain construction, and its write.

- ``SimilarityCopyText`` (arrays, per-name fragments built once, floats formatted in bulk)
  against ``json.dumps`` of ``similarity_rows``' dicts: awkward names (quotes, backslashes,
  unicode, emoji, control characters) and float edge values, compared as Python values
  (bit-identical floats) and as jsonb in PostgreSQL (equal, and the same jsonb text);
- the checks on the arrays name the same recipes as the per-row checks they replace;
- ``write_similarity``: a failing check leaves the previous rows byte for byte, a recipe
  deleted since the snapshot is left out without an error.
"""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import psycopg
import pytest
from barcart import EMResult, IngredientTree, NeighborArrays, RecipeMatrix, TransportPlans
from hypothesis import given, settings
from hypothesis import strategies as st

from cocktail_assets.catalog.load import IngredientCatalog, RecipeVolumes
from cocktail_assets.spaces.shape import (
    SimilarityCopyText,
    float_texts,
    similarity_copy_chunks,
    similarity_rows,
    similarity_table,
)
from cocktail_assets.spaces.similarity_table import (
    neighbor_problems,
    similarity_checks,
    write_similarity,
)

# Names a JSON or COPY encoder can get wrong.
RECIPE_NAMES = [
    'Piña "Jo\'s" Colada 🍍',
    "Back\\slash \\\\ and \\t not a tab",
    "Tab\there, new\nline, return\r, bell\x07, unit\x1f, del\x7f",
    "L'Été ☀️ \u2028 line separator \u2029 𝔐artini",
    "\\N",  # COPY's NULL, as text
    "\\.",  # COPY's end-of-data marker, as text
    "plain",
    "{\"json\": [1, 2]} in a name",
]
INGREDIENT_NAMES = ["Gin", "Crème de cassis 'Bob' 🫐", 'Aguardiente "Añejo" — ½',
                    "quote\" backslash\\ tab\t nl\n ctl\x01", "🍸", "a" * 200]
# Distances (sorted per recipe by barcart) and masses whose text is easy to get wrong:
# zero, tiny, large, shortest repr of 17 digits, exponent notation, integral values.
DISTANCES = [0.0, 5e-324, 1e-300, 1.5e-07, 9.999999999999999e-05, 1e-05, 0.0001,
             0.1, 0.30000000000000004, 1 / 3, 2.0 ** -20, 1.0, 123456.0, 1e15, 1e16,
             1.2345678901234568e+17, 1e200, 0.2, 7.938861796163987e-05, 2 / 3, 0.5, 3.0,
             12345678901234567.0, 1e22, 0.7, 0.125, 4.35, 1e-4, 2.5e-10, 8.0]
MASSES = [1e-11, 1.5e-07, 9.999999999999999e-05, 1e-05, 0.1, 0.30000000000000004, 1 / 3,
          1.0, 0.5, 2.0 ** -20, 0.2, 0.7, 123456.0, 1e16, 1.2345678901234568e+17, 2 / 3,
          7.938861796163987e-05, 0.999999999999, 0.25, 0.0001]


# What the checks accept (a transport mass is a fraction of the recipe's volume).
VALID_MASSES = [m for m in MASSES if 0 < m <= 1]


def awkward_case(n_recipes: int = len(RECIPE_NAMES), seed: int = 3, masses=MASSES):
    """An EM result over every pair of ``n_recipes`` recipes with awkward names, distances
    and masses; each plan has up to 4 flows, one of them an identity flow."""
    rng = np.random.default_rng(seed)
    ingredient_ids = np.array([3, 7, 20, 21, 40, 41])
    catalog = IngredientCatalog(
        tree=IngredientTree.from_paths(ingredient_ids, [f"/{i}/" for i in ingredient_ids]),
        names=np.array(INGREDIENT_NAMES), paths=np.array([f"/{i}/" for i in ingredient_ids]),
        allow_substitution=np.zeros(ingredient_ids.size, dtype=bool),
    )
    recipe_ids = np.arange(10, 10 + 3 * n_recipes, 3)
    names = [RECIPE_NAMES[k % len(RECIPE_NAMES)] + (f" {k}" if k >= len(RECIPE_NAMES) else "")
             for k in range(n_recipes)]
    volumes = RecipeVolumes(
        matrix=RecipeMatrix(recipe_ids=recipe_ids, ingredient_ids=ingredient_ids,
                            fractions=None),  # not read
        recipe_names=np.array(names), list_ptr=np.zeros(n_recipes + 1, dtype=np.int64),
        list_names=np.array([], dtype=str), expected_recipe_ids=recipe_ids,
    )
    pi, pj = np.triu_indices(n_recipes, 1)
    ptr, source, target, mass = [0], [], [], []
    for _ in range(pi.size):
        k = int(rng.integers(0, 5))
        a = rng.integers(0, ingredient_ids.size, k)
        b = rng.integers(0, ingredient_ids.size, k)
        if k:
            b[0] = a[0]  # an identity flow: "keep it", never a swap
        source += a.tolist()
        target += b.tolist()
        mass += rng.choice(masses, k, replace=False).tolist()
        ptr.append(len(mass))
    fit = EMResult(
        cost_ids=ingredient_ids, cost=np.zeros((ingredient_ids.size,) * 2),
        pair_i=pi.astype(np.int32), pair_j=pj.astype(np.int32),
        distances=np.array([DISTANCES[q % len(DISTANCES)] for q in range(pi.size)]),
        plans=TransportPlans(np.array(ptr), np.array(source, dtype=np.int32),
                             np.array(target, dtype=np.int32), np.array(mass)),
        iterations=1, converged=True,
    )
    return fit, volumes, catalog


_UNESCAPE = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\r": "\r"}


def parse_copy_text(text: str) -> list[list[str]]:
    """Rows of COPY text format, fields unescaped (no NULLs expected)."""
    rows = []
    for line in text.split("\n")[:-1]:
        fields = line.split("\t")
        rows.append([re.sub(r"\\[\\tnr]", lambda m: _UNESCAPE[m.group()], f) for f in fields])
    return rows


def reference_rows(fit, volumes, catalog, n):
    """(id, name, neighbours JSON text) the way the table was written before the fast path."""
    return [(rid, name, json.dumps(nbs, ensure_ascii=False))
            for rid, name, nbs in similarity_rows(fit, volumes, catalog, n)]


def _floats(value):
    """Every float of a JSON value, in order, as exact bit patterns."""
    if isinstance(value, float):
        return [np.float64(value).view(np.int64).item()]
    if isinstance(value, dict):
        return [x for k in sorted(value) for x in _floats(value[k])]
    if isinstance(value, list):
        return [x for v in value for x in _floats(v)]
    return []


@pytest.mark.parametrize("n", [20, 3, 1])
def test_copy_text_is_the_reference_json(n: int) -> None:
    fit, volumes, catalog = awkward_case()
    table = similarity_table(fit, volumes, catalog, n)
    text = b"".join(similarity_copy_chunks(table, "2026-12-01 10:20:30.123456",
                                           np.arange(table.rows.size), chunk_rows=3)).decode()
    got = parse_copy_text(text)
    want = reference_rows(fit, volumes, catalog, n)
    assert len(got) == len(want)
    for (rid, name, neighbors, created_at), (want_id, want_name, want_json) in zip(
            got, want, strict=True):
        assert (int(rid), name, created_at) == (want_id, want_name,
                                                "2026-12-01 10:20:30.123456")
        assert json.loads(neighbors) == json.loads(want_json)
        assert _floats(json.loads(neighbors)) == _floats(json.loads(want_json))
    # the case reaches what it is meant to: every awkward name and distance is written
    assert {row[1] for row in got} == set(RECIPE_NAMES)
    if n == 20:
        distances = {float(x) for x in re.findall(r'"distance":([^,}]+)', text)}
        assert distances == set(DISTANCES[:28])
        masses = {float(x) for x in re.findall(r'"mass":([^,}]+)', text)}
        assert len(masses) > 10 and masses <= set(MASSES)


def test_copy_text_gives_the_reference_jsonb(db_url: str) -> None:
    """PostgreSQL reads the fast text into the very jsonb the reference JSON gives: equal,
    and with the same text (so the same numeric digits)."""
    fit, volumes, catalog = awkward_case()
    table = similarity_table(fit, volumes, catalog, 20)
    want = reference_rows(fit, volumes, catalog, 20)
    with psycopg.connect(db_url) as conn:
        conn.execute("CREATE TEMP TABLE fast (recipe_id int, recipe_name text, "
                     "neighbors jsonb, created_at timestamp)")
        with conn.cursor().copy("COPY fast FROM STDIN") as copy:
            for chunk in similarity_copy_chunks(table, "2026-12-01 10:20:30",
                                                np.arange(table.rows.size), chunk_rows=4):
                copy.write(chunk)
        conn.execute("CREATE TEMP TABLE plain (recipe_id int, recipe_name text, "
                     "neighbors jsonb)")
        with conn.cursor().copy("COPY plain FROM STDIN") as copy:
            for row in want:
                copy.write_row(row)
        compared = conn.execute(
            "SELECT p.recipe_id, f.recipe_name = p.recipe_name, f.neighbors = p.neighbors, "
            "f.neighbors::text = p.neighbors::text FROM plain p "
            "FULL JOIN fast f USING (recipe_id) ORDER BY 1").fetchall()
    assert compared == [(rid, True, True, True) for rid, _, _ in want]


def test_copy_text_of_selected_rows_only() -> None:
    fit, volumes, catalog = awkward_case()
    table = similarity_table(fit, volumes, catalog, 20)
    text = SimilarityCopyText(table, "2026-12-01 10:20:30").rows(np.array([5, 1])).decode()
    ids = volumes.matrix.recipe_ids
    assert [int(r[0]) for r in parse_copy_text(text)] == ids[[5, 1]].tolist()
    assert SimilarityCopyText(table, "x").rows(np.zeros(0, dtype=np.int64)) == b""


def test_a_recipe_without_neighbours_gets_an_empty_list() -> None:
    fit, volumes, catalog = awkward_case(n_recipes=1)
    table = similarity_table(fit, volumes, catalog, 20)
    text = SimilarityCopyText(table, "t").rows(np.arange(1)).decode()
    assert parse_copy_text(text) == [[str(volumes.matrix.recipe_ids[0]), RECIPE_NAMES[0],
                                      "[]", "t"]]


def _with_neighbors(table, **changes):
    return dataclasses.replace(
        table, neighbors=dataclasses.replace(table.neighbors, **changes))


def test_neighbor_problems_name_each_broken_invariant() -> None:
    fit, volumes, catalog = awkward_case(masses=VALID_MASSES)
    table = similarity_table(fit, volumes, catalog, 20)
    ids = volumes.matrix.recipe_ids
    assert neighbor_problems(table) == []
    nb = table.neighbors
    index, distance = nb.index.copy(), nb.distance.copy()
    mass = nb.flow_mass.copy()
    index[1, 0] = 1                               # recipe 1 is its own neighbour
    distance[2, 3] = 2 * distance[2, 4] + 1        # recipe 2 unsorted
    distance[3, 6] = np.nan                       # recipe 3 not finite
    distance[4, :] = -1.0                         # recipe 4 negative (sorted though)
    flowing = np.argwhere(nb.flow_from[5] >= 0)[0]
    mass[5][tuple(flowing)] = 1.5                 # recipe 5 a mass above 1
    flowing = np.argwhere(nb.flow_from[6] >= 0)[0]
    mass[6][tuple(flowing)] = 0.0                 # recipe 6 a zero mass
    broken = _with_neighbors(table, index=index, distance=distance, flow_mass=mass)
    assert neighbor_problems(broken) == ids[[1, 2, 3, 4, 5, 6]].tolist()
    # padding (no neighbour, no flow) is never an offence
    padded = _with_neighbors(table, distance=np.where(nb.index >= 0, nb.distance, np.nan))
    assert neighbor_problems(padded) == []


def take(table, positions):
    """The table with only (or repeated) rows ``positions``."""
    nb = table.neighbors
    return dataclasses.replace(table, rows=table.rows[positions], neighbors=NeighborArrays(
        *(getattr(nb, f.name)[positions] for f in dataclasses.fields(nb))))


def test_each_recipe_once_on_the_rows() -> None:
    fit, volumes, catalog = awkward_case(masses=VALID_MASSES)
    table = similarity_table(fit, volumes, catalog, 20)
    assert all(r.passed for r in similarity_checks(table, volumes.expected_recipe_ids))
    repeated = take(table, np.concatenate([[0], table.rows]))
    each, valid = similarity_checks(repeated, volumes.expected_recipe_ids)
    assert not each.passed and each.metadata["offending"].value == [10] and valid.passed
    missing = take(table, table.rows[1:])
    each, _ = similarity_checks(missing, volumes.expected_recipe_ids)
    assert each.metadata["offending"].value == [10]


def _site(db_url: str, volumes) -> None:
    with psycopg.connect(db_url) as conn:
        for rid, name in zip(volumes.matrix.recipe_ids.tolist(), volumes.recipe_names.tolist(),
                             strict=True):
            conn.execute("INSERT INTO recipes (id, name) VALUES (%s, %s)", (rid, name))


def _table(db_url: str) -> list[tuple]:
    with psycopg.connect(db_url) as conn:
        return conn.execute("SELECT recipe_id, recipe_name, neighbors::text, created_at "
                            "FROM recipe_similarity ORDER BY recipe_id").fetchall()


def test_write_replaces_the_rows_with_the_reference_json(db_url: str) -> None:
    fit, volumes, catalog = awkward_case(masses=VALID_MASSES)
    _site(db_url, volumes)
    with psycopg.connect(db_url) as conn:
        done = write_similarity(conn, fit, volumes, catalog, 20)
        assert done.passed and done.written == done.staged == len(RECIPE_NAMES)
        assert set(done.seconds) == {"rows", "checks", "swap", "json", "copy", "commit"}
        first = _table(db_url)
        again = write_similarity(conn, fit, volumes, catalog, 3)  # replaces every row
    assert again.passed and again.written == len(RECIPE_NAMES)
    rows = _table(db_url)
    assert len({created for *_, created in rows}) == 1 and rows[0][3] != first[0][3]
    with psycopg.connect(db_url) as conn:
        want = {rid: json.loads(text) for rid, _, text in reference_rows(fit, volumes,
                                                                         catalog, 3)}
        got = dict(conn.execute("SELECT recipe_id, neighbors FROM recipe_similarity"))
    assert got == want


def test_a_failing_check_leaves_the_previous_rows(db_url: str) -> None:
    fit, volumes, catalog = awkward_case(masses=VALID_MASSES)
    _site(db_url, volumes)
    with psycopg.connect(db_url) as conn:
        assert write_similarity(conn, fit, volumes, catalog, 20).passed
    before = _table(db_url)
    # masses above 1 in the plans: neighbors_valid fails, naming the recipes
    heavy = dataclasses.replace(fit, plans=dataclasses.replace(
        fit.plans, mass=fit.plans.mass + 1))
    # a recipe the SQL expects but no row has: each_recipe_once fails
    unexpected = dataclasses.replace(volumes, expected_recipe_ids=np.append(
        volumes.expected_recipe_ids, 999))
    for args, failing in (((heavy, volumes), "neighbors_valid"),
                          ((fit, unexpected), "each_recipe_once")):
        with psycopg.connect(db_url) as conn:
            done = write_similarity(conn, *args, catalog, 3)
        assert [r.check_name for r in done.results if not r.passed] == [failing]
        assert done.written == 0
        assert _table(db_url) == before


def test_a_recipe_deleted_since_the_snapshot_is_left_out(db_url: str) -> None:
    fit, volumes, catalog = awkward_case(masses=VALID_MASSES)
    _site(db_url, volumes)
    gone = int(volumes.matrix.recipe_ids[2])
    with psycopg.connect(db_url) as conn:
        assert write_similarity(conn, fit, volumes, catalog, 20).passed
        # deleted after the snapshot the neighbours were computed from: the cascade removes
        # its row, and the next write (of rows that still include it) leaves it out
        conn.execute("DELETE FROM recipes WHERE id = %s", (gone,))
        conn.commit()
        done = write_similarity(conn, fit, volumes, catalog, 20)
    assert done.passed and done.staged == len(RECIPE_NAMES)
    assert done.written == len(RECIPE_NAMES) - 1
    assert [r for r, *_ in _table(db_url)] == [
        r for r in volumes.matrix.recipe_ids.tolist() if r != gone]


def test_a_recipe_deleted_during_the_write_waits_for_it(db_url: str) -> None:
    """The recipes written are locked (FOR KEY SHARE) for the transaction: a delete that
    comes in while the rows stream waits for the commit, then cascades; the write never
    fails on the foreign key."""
    import threading

    fit, volumes, catalog = awkward_case(masses=VALID_MASSES)
    _site(db_url, volumes)
    gone = int(volumes.matrix.recipe_ids[4])
    deleted = threading.Event()
    results: list[str] = []

    def delete() -> None:
        with psycopg.connect(db_url, autocommit=True) as other:
            other.execute("SET lock_timeout = '20s'")
            other.execute("DELETE FROM recipes WHERE id = %s", (gone,))
            results.append("deleted")
            deleted.set()

    import cocktail_assets.spaces.similarity_table as module
    original = module.similarity_copy_chunks

    def chunks_while_deleting(*args, **kwargs):
        worker = threading.Thread(target=delete)
        worker.start()
        worker.join(0.5)  # the delete is blocked by the lock: it cannot finish yet
        results.append("blocked" if not deleted.is_set() else "not blocked")
        yield from original(*args, **kwargs)
        chunks_while_deleting.worker = worker

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, "similarity_copy_chunks", chunks_while_deleting)
        with psycopg.connect(db_url) as conn:
            done = write_similarity(conn, fit, volumes, catalog, 20)
    chunks_while_deleting.worker.join(30)
    assert done.passed and done.written == len(RECIPE_NAMES)
    assert results == ["blocked", "deleted"]
    assert gone not in [r for r, *_ in _table(db_url)]  # the cascade, after the commit


def test_a_role_that_may_only_read_recipes_still_writes(db_url: str) -> None:
    """Without UPDATE on recipes the rows cannot be locked: the ids are read unlocked and the
    write goes on (a recipe deleted during it would fail the foreign key, nothing replaced)."""
    import uuid

    fit, volumes, catalog = awkward_case(masses=VALID_MASSES)
    _site(db_url, volumes)
    role = f"similarity_writer_{uuid.uuid4().hex[:8]}"  # roles are per server
    with psycopg.connect(db_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
        admin.execute(f"GRANT SELECT ON recipes TO {role}")
        admin.execute(f"GRANT SELECT, INSERT, DELETE ON recipe_similarity TO {role}")
    try:
        with psycopg.connect(psycopg.conninfo.make_conninfo(db_url, user=role)) as conn:
            done = write_similarity(conn, fit, volumes, catalog, 20)
        assert done.passed and done.written == len(RECIPE_NAMES)
    finally:
        with psycopg.connect(db_url, autocommit=True) as admin:
            admin.execute(f"DROP OWNED BY {role}")
            admin.execute(f"DROP ROLE {role}")
    assert len(_table(db_url)) == len(RECIPE_NAMES)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=50))
def test_float_texts_are_the_floats_repr_writes(values: list[float]) -> None:
    """Same number as ``repr`` (so ``json.dumps``), digit for digit; reads back bit-exact."""
    from decimal import Decimal

    blob, starts, ends = float_texts(np.array(values))
    texts = [bytes(blob[s:e]).decode() for s, e in zip(starts, ends, strict=True)]
    assert [Decimal(t) for t in texts] == [Decimal(repr(v)) for v in values]
    assert [float(t) for t in texts] == values
    assert all(np.float64(float(t)).view(np.int64) == np.float64(v).view(np.int64)
               for t, v in zip(texts, values, strict=True))
