"""bl.group_sql: the GROUP BY runs in the database and gives exactly bl.group's Grouped.

PostgreSQL tests run against a throwaway server (see conftest.py) holding 5M rows loaded with
COPY; DuckDB, SQLite and SQLAlchemy connections are checked on files in a temp folder.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pytest
import sqlalchemy as sa
from helpers import BAD_LABEL_IDS, BAD_LABELS, imported_modules

import binomlab as bl
from binomlab.grouping.sql import quote_identifier

ROWS = 5_000_000
FEATURES = ["country", "hour", "mobile"]
COUNTRIES = np.array(["de", "es", "fr", "it", "nl", "pl", "se"])
INJECTION = 'x"; drop table events; --'


def make_events(rows: int, seed: int = 0) -> pl.DataFrame:
    """Click rows: a string feature with 1% nulls, an Int16 hour, a bool, and two labels."""
    rng = np.random.default_rng(seed)
    hour = rng.integers(0, 24, rows).astype(np.int16)
    mobile = rng.random(rows) < 0.4
    p = 0.05 + 0.1 * mobile + 0.004 * hour
    clicked = rng.random(rows) < p
    return pl.DataFrame(
        {
            "country": pl.Series(rng.choice(COUNTRIES, rows)).set(
                pl.Series(rng.random(rows) < 0.01), None
            ),
            "hour": hour,
            "mobile": mobile,
            "clicked": clicked,
            "outcome": np.where(clicked, "buy", "browse"),
        }
    )


def copy_into_postgres(uri: str, table: str, frame: pl.DataFrame) -> None:
    """CREATE TABLE and COPY the rows in (ADBC's bulk ingest speaks COPY ... FROM STDIN)."""
    import adbc_driver_postgresql.dbapi as pg_dbapi

    with pg_dbapi.connect(uri) as conn:
        with conn.cursor() as cur:
            cur.adbc_ingest(table, frame.to_arrow(), mode="replace")
        conn.commit()


def postgres_rows(uri: str, table: str = "events") -> int:
    return pl.read_database_uri(f"select count(*) as c from {table}", uri, engine="adbc").item()


@pytest.fixture(scope="module")
def events() -> pl.DataFrame:
    return make_events(ROWS)


@pytest.fixture(scope="module")
def pg_events(postgres_uri: str, events: pl.DataFrame) -> str:
    copy_into_postgres(postgres_uri, "events", events)
    return postgres_uri


@pytest.fixture(scope="module")
def pg_local(pg_events: str) -> pl.DataFrame:
    """Every row of the PostgreSQL table, read into Polars."""
    return pl.read_database_uri("select * from events", pg_events, engine="adbc")


def assert_same_error(local: Callable[[], Any], remote: Callable[[], Any]) -> str:
    """Both calls raise the same binomlab error class with the same message."""
    with pytest.raises(bl.BinomlabError) as expected:
        local()
    with pytest.raises(bl.BinomlabError) as got:
        remote()
    assert type(got.value) is type(expected.value)
    assert str(got.value) == str(expected.value)
    return str(got.value)


# --- PostgreSQL, 5M rows ---------------------------------------------------------------------


@pytest.mark.slow
def test_postgres_group_sql_equals_group_on_the_rows_read_locally(
    pg_events: str, pg_local: pl.DataFrame, events: pl.DataFrame
) -> None:
    g = bl.group_sql("events", pg_events, FEATURES, "clicked")
    assert g.equals(bl.group(pg_local, FEATURES, "clicked"))
    assert g.equals(bl.group(events, FEATURES, "clicked"))
    assert len(g) == 8 * 24 * 2  # 7 countries and null, 24 hours, mobile or not
    assert g.trials == ROWS
    assert g.successes == int(events["clicked"].sum())
    assert g.frame.schema == pl.Schema(
        {"country": pl.String, "hour": pl.Int16, "mobile": pl.Boolean, "n": pl.Int64, "k": pl.Int64}
    )
    assert g.frame["country"][0] is None
    nulls = events.filter(pl.col("country").is_null())
    assert g.frame.filter(pl.col("country").is_null())["n"].sum() == nulls.height


@pytest.mark.slow
def test_postgres_query_with_positive_and_schema_qualified_table(
    pg_events: str, pg_local: pl.DataFrame
) -> None:
    query = "select country, hour, outcome from events where hour < 12 -- mornings\n;"
    g = bl.group_sql(query, pg_events, ["country", "hour"], "outcome", positive="buy")
    morning = pg_local.filter(pl.col("hour") < 12)
    assert g.equals(bl.group(morning, ["country", "hour"], "outcome", positive="buy"))
    assert g.trials == morning.height
    assert g.successes == int((morning["outcome"] == "buy").sum())
    # An open DB-API connection (ADBC's) and a schema-qualified table name.
    import adbc_driver_postgresql.dbapi as pg_dbapi

    with pg_dbapi.connect(pg_events) as conn:
        g2 = bl.group_sql("public.events", conn, ["mobile"], "clicked")
        assert conn.adbc_current_db_schema == "public"  # still open and usable
    assert g2.equals(bl.group(pg_local, "mobile", "clicked"))
    assert g2.trials == ROWS


@pytest.mark.slow
def test_postgres_injection_in_a_name_is_quoted_or_rejected(pg_events: str) -> None:
    import adbc_driver_manager

    with pytest.raises(bl.ColumnNotFoundError, match=r"Feature 'x\"; drop table events; --'"):
        bl.group_sql("events", pg_events, [INJECTION], "clicked")
    with pytest.raises(bl.ColumnNotFoundError, match=r"Label 'y\"; drop table events; --'"):
        bl.group_sql("events", pg_events, ["hour"], 'y"; drop table events; --')
    with pytest.raises(adbc_driver_manager.ProgrammingError, match=r'relation "events; drop'):
        bl.group_sql("events; drop table events; --", pg_events, ["hour"], "clicked")
    assert postgres_rows(pg_events) == ROWS

    # A column that really has that name is grouped by it, as a quoted identifier.
    weird = pl.DataFrame({INJECTION: ["a", "b", "a", "a"], "clicked": [True, False, False, True]})
    copy_into_postgres(pg_events, "weird", weird)
    g = bl.group_sql("weird", pg_events, [INJECTION], "clicked")
    assert g.frame.rows() == [("a", 3, 2), ("b", 1, 0)]
    assert g.features == (INJECTION,)
    assert postgres_rows(pg_events) == ROWS


@pytest.mark.slow
@pytest.mark.parametrize(("case", "label", "kwargs"), BAD_LABELS, ids=BAD_LABEL_IDS)
def test_postgres_label_errors_match_group(postgres_uri: str, case, label, kwargs) -> None:
    frame = pl.DataFrame({"f": ["a", "a", "b", "b"], "y": label})
    table = "labels_" + case.replace(" ", "_")
    copy_into_postgres(postgres_uri, table, frame)
    assert_same_error(
        lambda: bl.group(frame, "f", "y", **kwargs),
        lambda: bl.group_sql(table, postgres_uri, "f", "y", **kwargs),
    )


@pytest.mark.slow
def test_postgres_missing_column_and_empty_table_errors_match_group(postgres_uri: str) -> None:
    frame = pl.DataFrame({"colour": ["a"], "size": [1], "y": [1]})
    copy_into_postgres(postgres_uri, "small", frame)
    msg = assert_same_error(
        lambda: bl.group(frame, ["colour", "sise"], "y"),
        lambda: bl.group_sql("small", postgres_uri, ["colour", "sise"], "y"),
    )
    assert "Available columns: ['colour', 'size', 'y']" in msg
    assert "did you mean 'sise' -> 'size'" in msg
    empty = frame.clear()
    assert_same_error(
        lambda: bl.group(empty, "colour", "y"),
        lambda: bl.group_sql("select * from small where y > 1", postgres_uri, "colour", "y"),
    )


# --- DuckDB database file, the same 5M rows -------------------------------------------------


def test_duckdb_file_equals_group_on_the_rows_read_locally(tmp_path, events) -> None:
    path = tmp_path / "events.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create table events as select * from events")
    with duckdb.connect(str(path), read_only=True) as con:
        local = pl.DataFrame(con.sql("select * from events").to_arrow_table())
        g = bl.group_sql("events", con, FEATURES, "clicked")
        q = bl.group_sql("select * from main.events where mobile;", con, "hour", "clicked")
    expected = bl.group(local, FEATURES, "clicked")
    assert g.equals(expected)
    assert g.equals(bl.group(events, FEATURES, "clicked"))
    assert g.trials == ROWS
    assert g.successes == int(events["clicked"].sum())
    assert q.equals(bl.group(local.filter("mobile"), "hour", "clicked"))
    assert q.trials == int(events["mobile"].sum())
    # The same file through a URI, read with DuckDB's ADBC driver.
    assert bl.group_sql("events", f"duckdb:///{path}", FEATURES, "clicked").equals(expected)


@pytest.mark.parametrize(("case", "label", "kwargs"), BAD_LABELS, ids=BAD_LABEL_IDS)
def test_duckdb_label_errors_match_group(case, label, kwargs) -> None:
    frame = pl.DataFrame({"f": ["a", "a", "b", "b"], "y": label})
    with duckdb.connect() as con:
        con.execute("create table labels as select * from frame")
        assert_same_error(
            lambda: bl.group(frame, "f", "y", **kwargs),
            lambda: bl.group_sql("labels", con, "f", "y", **kwargs),
        )


@pytest.mark.parametrize(
    ("values", "dtype", "positive"),
    [
        ([True, False, True, True], pl.Boolean, None),
        ([1, 0, 1, 1], pl.Int64, None),
        ([1.0, 0.0, 1.0, 1.0], pl.Float64, None),
        (["yes", "no", "yes", "yes"], pl.String, "yes"),
        ([2, 1, 2, 2], pl.Int64, 2),
        ([False, True, False, False], pl.Boolean, False),
    ],
)
def test_duckdb_label_kinds(values, dtype, positive) -> None:
    frame = pl.DataFrame({"f": ["a", "a", "b", "b"], "y": pl.Series(values, dtype=dtype)})
    with duckdb.connect() as con:
        con.execute("create table t as select * from frame")
        g = bl.group_sql("t", con, "f", "y", positive=positive)
    assert g.frame.rows() == [("a", 2, 1), ("b", 2, 2)]
    assert g.equals(bl.group(frame, "f", "y", positive=positive))


def test_null_labels_dropped_like_group() -> None:
    frame = pl.DataFrame({"f": ["a", "a", "b", "b", None], "y": [1, None, 0, None, 1]})
    with duckdb.connect() as con:
        con.execute("create table t as select * from frame")
        g = bl.group_sql("t", con, "f", "y", drop_null_labels=True)
    assert g.frame.rows() == [(None, 1, 1), ("a", 1, 1), ("b", 1, 0)]
    assert g.equals(bl.group(frame, "f", "y", drop_null_labels=True))


# --- DB-API (sqlite3) and SQLAlchemy connections -------------------------------------------


def test_sqlite_dbapi_and_sqlalchemy_connections(tmp_path) -> None:
    frame = make_events(20_000, seed=1).select(
        "country", pl.col("hour").cast(pl.Int64), pl.col("clicked").cast(pl.Int64)
    )
    expected = bl.group(frame, ["country", "hour"], "clicked")
    path = tmp_path / "events.sqlite"
    engine = sa.create_engine(f"sqlite:///{path}")
    frame.write_database("Events", engine)

    con = sqlite3.connect(path)
    try:
        assert bl.group_sql("Events", con, ["country", "hour"], "clicked").equals(expected)
        assert con.execute("select count(*) from Events").fetchone() == (20_000,)  # still open
    finally:
        con.close()
    with engine.connect() as conn:
        assert bl.group_sql("Events", conn, ["country", "hour"], "clicked").equals(expected)
    g = bl.group_sql("select * from Events", engine, "hour", "clicked")
    assert g.equals(bl.group(frame, "hour", "clicked"))
    assert g.trials == 20_000
    engine.dispose()


# --- arguments, checked before anything runs ------------------------------------------------


@pytest.mark.parametrize(
    ("query", "connection", "features", "label", "error", "match"),
    [
        ("t", object(), "f", "y", TypeError, r"Cannot run SQL on a connection of type builtins"),
        ("t", "events.db", "f", "y", bl.BinomlabError, r"'events\.db' is not a database URI"),
        ("t.", "duckdb", "f", "y", bl.BinomlabError, r"expected 'table' or 'schema\.table'"),
        ("t", "duckdb", [], "y", bl.BinomlabError, r"features must name at least one column"),
        ("t", "duckdb", "n", "y", bl.BinomlabError, r"A feature cannot be named 'n'"),
        ("t", "duckdb", ["f", "y"], "y", bl.BinomlabError, r"'y' is both the label and a feature"),
        ("t", "duckdb", "f", 3, bl.BinomlabError, r"label must be a column name"),
        (None, "duckdb", "f", "y", bl.BinomlabError, r"a table name or a SELECT statement"),
    ],
)
def test_bad_arguments(query, connection, features, label, error, match) -> None:
    if connection == "duckdb":
        connection = duckdb.connect()
    with pytest.raises(error, match=match):
        bl.group_sql(query, connection, features, label)


def test_quote_identifier() -> None:
    assert quote_identifier("plain") == '"plain"'
    assert quote_identifier(INJECTION) == '"x""; drop table events; --"'
    assert quote_identifier("a`b", quote="`") == "`a``b`"
    with pytest.raises(bl.BinomlabError, match="empty or holds a NUL"):
        quote_identifier("")


def test_sql_in_names_never_reaches_the_database_as_code(tmp_path) -> None:
    path = tmp_path / "db.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute('create table events (hour integer, "a""b" varchar, y boolean)')
        con.execute("insert into events values (1, 'q', true), (1, 'q', false), (2, 'r', true)")
        with pytest.raises(bl.ColumnNotFoundError, match=r"Available columns: \['hour', 'a\"b'"):
            bl.group_sql("events", con, ['hour", 1 from events; drop table events; --'], "y")
        with pytest.raises(duckdb.CatalogException):
            bl.group_sql("events; drop table events", con, "hour", "y")
        g = bl.group_sql("events", con, ['a"b', "hour"], "y")
        assert g.frame.rows() == [("q", 1, 2, 1), ("r", 2, 1, 1)]
        assert con.sql("select count(*) from events").fetchall() == [(3,)]


def test_binomlab_does_not_import_optional_engines() -> None:
    engines = ("pyspark", "adbc_driver_postgresql", "sqlalchemy", "duckdb")
    assert imported_modules("import binomlab", engines) == []


def test_postgresql_uri_without_the_driver_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "adbc_driver_postgresql.dbapi", None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'binomlab\[sql\]'"):
        bl.group_sql("events", "postgresql://me@127.0.0.1:9/db", "f", "y")
