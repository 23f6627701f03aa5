"""Grouping where the data lives: the ``GROUP BY`` runs in a SQL database.

:func:`group_sql` asks the database for the source's columns (a query that returns no rows),
then sends it

.. code-block:: sql

    select "f1", "f2", "y", count(*) as "__binomlab_rows"
    from <table or (query) as t>
    group by "f1", "f2", "y"

and reads back only its result, at most two rows per group (three with null labels). The
label's values are then checked and folded into ``n`` and ``k`` in Polars by the same code as
:func:`binomlab.group`, so both give the same ``Grouped`` and the same errors.

Column and table names are always quoted as identifiers in the connection's dialect, and only
names the database reported as columns of the source are ever sent: a feature name is never
pasted into the SQL text as code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import polars as pl

from binomlab.errors import BinomlabError
from binomlab.grouped import Grouped
from binomlab.grouping.checks import check_group_arguments, check_group_schema
from binomlab.grouping.labels import ROWS, fold_label_counts
from binomlab.grouping.sources import _is_instance_of

__all__ = ["group_sql", "quote_identifier"]

Reader = Callable[[str], pl.DataFrame]
Quoter = Callable[[str], str]

_ACCEPTED = (
    "a database URI string (e.g. 'postgresql://user@host:5432/db', read with ADBC), a DuckDB "
    "connection, a SQLAlchemy Engine/Connection/Session, or an open DB-API 2.0 connection"
)
# A SELECT-like statement (or a parenthesised one) rather than a table name.
_QUERY_START = re.compile(r"\s*(\(|(select|with|values|table|from)\s)", re.IGNORECASE)
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def quote_identifier(name: str, *, quote: str = '"') -> str:
    """Quote ``name`` as a SQL identifier: wrap it in ``quote`` and double any ``quote`` in it.

    ``'"'`` is the SQL standard (PostgreSQL, DuckDB, SQLite, Snowflake…); MySQL uses
    ``'`'``.

    Raises
    ------
    BinomlabError
        ``name`` is empty or holds a NUL character, which no database accepts in a name.
    """
    if not name or "\x00" in name:
        msg = f"Cannot use {name!r} as a SQL identifier: it is empty or holds a NUL character."
        raise BinomlabError(msg)
    return quote + name.replace(quote, quote * 2) + quote


def _uri_reader(uri: str) -> tuple[Reader, Quoter]:
    scheme = uri.split(":", 1)[0].lower()
    mark = "`" if scheme in ("mysql", "mariadb") else '"'

    def read(sql: str) -> pl.DataFrame:
        return pl.read_database_uri(sql, uri, engine="adbc")

    return read, lambda name: quote_identifier(name, quote=mark)


def _duckdb_reader(conn: Any) -> tuple[Reader, Quoter]:
    def read(sql: str) -> pl.DataFrame:
        return pl.DataFrame(conn.sql(sql).to_arrow_table())

    return read, quote_identifier


def _sqlalchemy_reader(conn: Any) -> tuple[Reader, Quoter]:
    bind = conn.get_bind() if hasattr(conn, "get_bind") else conn
    preparer = bind.dialect.identifier_preparer

    def read(sql: str) -> pl.DataFrame:
        return pl.read_database(sql, conn, infer_schema_length=None)

    return read, preparer.quote_identifier


def _dbapi_reader(conn: Any) -> tuple[Reader, Quoter]:
    mark = "`" if "mysql" in type(conn).__module__.lower() else '"'

    def read(sql: str) -> pl.DataFrame:
        return pl.read_database(sql, conn, infer_schema_length=None)

    return read, lambda name: quote_identifier(name, quote=mark)


def _open_postgresql(uri: str) -> Any:
    """An ADBC connection to a postgresql:// URI (one connection serves both queries)."""
    try:
        import adbc_driver_postgresql.dbapi as pg_dbapi
    except ImportError as err:
        msg = (
            "Reading a postgresql:// URI needs the ADBC PostgreSQL driver: "
            "pip install 'binomlab[sql]' (or adbc-driver-postgresql). Or pass an open "
            "connection (psycopg, SQLAlchemy) instead of the URI."
        )
        raise ModuleNotFoundError(msg) from err
    return pg_dbapi.connect(uri)


@contextmanager
def _connect(connection: Any) -> Iterator[tuple[Reader, Quoter]]:
    """A function running a query on ``connection`` into Polars, and its identifier quoting.

    A connection opened here from a URI is closed on exit; the caller's own stays open.

    Raises
    ------
    TypeError
        ``connection`` is none of the accepted kinds.
    BinomlabError
        A string that is not a URI.
    ModuleNotFoundError
        A postgresql:// URI without adbc-driver-postgresql installed.
    """
    if isinstance(connection, str):
        if not _URI.match(connection):
            msg = (
                f"connection={connection!r} is not a database URI. Pass one such as "
                "'postgresql://user@localhost:5432/db', or an open connection."
            )
            raise BinomlabError(msg)
        if connection.split(":", 1)[0].lower() in ("postgresql", "postgres"):
            conn = _open_postgresql(connection)
            try:
                yield _dbapi_reader(conn)
            finally:
                conn.close()
        else:
            yield _uri_reader(connection)
    elif _is_instance_of(connection, "duckdb", ("DuckDBPyConnection",)):
        yield _duckdb_reader(connection)
    elif _is_instance_of(connection, "sqlalchemy.engine", ("Connection", "Engine")) or (
        _is_instance_of(connection, "sqlalchemy.orm", ("Session",))
    ):
        yield _sqlalchemy_reader(connection)
    elif callable(getattr(connection, "cursor", None)):
        yield _dbapi_reader(connection)
    else:
        kind = f"{type(connection).__module__}.{type(connection).__qualname__}"
        msg = f"Cannot run SQL on a connection of type {kind}. Expected {_ACCEPTED}."
        raise TypeError(msg)


def _source_sql(query_or_table: str, quote: Quoter) -> str:
    """The ``FROM`` operand: a quoted (possibly schema-qualified) table, or ``(query) as t``.

    Raises
    ------
    BinomlabError
        An empty query or table name, or an empty part in a dotted table name.
    """
    if not isinstance(query_or_table, str):
        msg = (
            "query_or_table must be a table name or a SELECT statement. "
            f"Received: {type(query_or_table).__name__}"
        )
        raise BinomlabError(msg)
    text = re.sub(r"[;\s]+$", "", query_or_table)
    if _QUERY_START.match(text):
        # Newlines keep a trailing "-- comment" in the query from swallowing the parenthesis.
        return f"(\n{text}\n) as t"
    parts = text.strip().split(".")
    if not all(parts):
        msg = (
            f"Cannot read the table {query_or_table!r}: expected 'table' or 'schema.table'. "
            "For anything else pass a SELECT statement."
        )
        raise BinomlabError(msg)
    return ".".join(quote(p) for p in parts)


def group_sql(
    query_or_table: str,
    connection: Any,
    features: str | Sequence[str],
    label: str,
    *,
    positive: Any = None,
    drop_null_labels: bool = False,
) -> Grouped:
    """Group raw 0/1 rows in a SQL database and read back only the groups.

    Two queries run in the database: one that returns no rows, to learn the source's columns
    and dtypes, then ``select features, label, count(*) ... group by features, label``. The
    result, a few rows per group, is folded into ``n`` and ``k`` exactly as
    :func:`binomlab.group` does, so the two return equal ``Grouped`` objects for the same rows
    and raise the same errors.

    Parameters
    ----------
    query_or_table
        A table name (``"events"`` or ``"schema.events"``; each part is quoted, so it is
        case-sensitive) or a query (``"select ... from ..."``, ``"with ..."``; a trailing
        ``;`` is dropped), which runs as a subquery.
    connection
        Where to run it: a URI string such as ``"postgresql://user@host:5432/db"`` (one
        ADBC connection, opened and closed here: ``pip install 'binomlab[sql]'``) or
        ``"duckdb:///path/events.duckdb"`` (any URI :func:`polars.read_database_uri` reads
        with ADBC), a DuckDB connection (``duckdb.connect("events.duckdb")``),
        a SQLAlchemy Engine, Connection or Session, or any open DB-API 2.0 connection
        (psycopg, sqlite3, an ADBC connection…). An open connection is left open.
    features
        Column name(s) to group by. Quoted as identifiers, never pasted as SQL. A null
        feature value is a group of its own.
    label
        The outcome column: bool, integer or float 0/1, or any two-valued column together
        with ``positive=``.
    positive
        The label value that counts as a success. Needed unless the label is bool or 0/1.
        It is compared in Python on the grouped result, never sent to the database.
    drop_null_labels
        Leave out rows whose label is null instead of raising.

    Returns
    -------
    Grouped
        One row per feature combination, sorted by the features (nulls first): the features
        with the dtypes the database returns, then ``n`` and ``k`` (Int64).

    Raises
    ------
    ColumnNotFoundError
        A feature or the label is not a column of the table or query; the message lists the
        columns the database reported.
    InvalidLabelError
        The label is not binary, is null somewhere (unless ``drop_null_labels``), or
        ``positive`` is not one of its values.
    EmptyDataError
        The table or query holds no rows.
    BinomlabError
        Bad feature names, the label also listed as a feature, a string connection that is
        not a URI, or an empty table name.
    TypeError
        ``connection`` is not a kind binomlab can run SQL on.
    ModuleNotFoundError
        A ``postgresql://`` URI without ``adbc-driver-postgresql`` installed.

    Errors raised by the database or its driver (a missing table, a syntax error in the
    query, a refused connection) are passed on unchanged.
    """
    features = check_group_arguments(features, label, drop_null_labels=drop_null_labels)
    with _connect(connection) as (read, quote):
        source = _source_sql(query_or_table, quote)
        schema = read(f"select * from {source} where 1 = 0").schema
        check_group_schema(schema, features, label)

        keys = ", ".join(quote(c) for c in (*features, label))
        partial = read(f"select {keys}, count(*) as {quote(ROWS)} from {source} group by {keys}")
    # Name the columns by position: a driver may report a quoted name differently.
    partial.columns = [*features, label, ROWS]
    counts = fold_label_counts(
        partial, features, label, positive=positive, drop_null_labels=drop_null_labels
    )
    return Grouped(counts, features)
