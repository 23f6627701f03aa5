"""Shared fixtures: a throwaway PostgreSQL server, a local Spark session, and the small
synthetic training and validation sets the backend tests share.

The server and the session skip with a reason when their software is missing, except under
CI (``CI=true``), where ``.ci/run`` installs them and a skip would hide a path that never
ran: there they fail.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from pg_cluster import PostgresCluster, find_bin_dir

from binomlab.backends.protocol import TrainData
from binomlab.testing import synthetic_train_data


def skip_or_fail(reason: str) -> None:
    """Skip the test, or fail it when running under CI, where everything must run."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: .ci/run must provide it, so this is not skipped)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_uri() -> Iterator[str]:
    """URI of a database in a fresh PostgreSQL cluster on a free loopback port."""
    if importlib.util.find_spec("adbc_driver_postgresql") is None:
        skip_or_fail("adbc-driver-postgresql is not installed: pip install 'binomlab[sql]'")
    bin_dir = find_bin_dir()
    if bin_dir is None:
        skip_or_fail(
            "no PostgreSQL server binaries (initdb, pg_ctl) on PATH or in "
            "/usr/lib/postgresql/*/bin: apt-get install postgresql"
        )
    with PostgresCluster.start(bin_dir) as cluster:
        yield cluster.uri


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A local-mode SparkSession on two cores."""
    if importlib.util.find_spec("pyspark") is None:
        skip_or_fail("pyspark is not installed: pip install 'binomlab[spark]'")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        skip_or_fail("no Java runtime for Spark (java on PATH or JAVA_HOME)")
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    warehouse = tmp_path_factory.mktemp("spark-warehouse")
    session = (
        SparkSession.builder.master("local[2]")
        .appName("binomlab-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.warehouse.dir", str(warehouse))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def data() -> TrainData:
    """Encoded training groups for the backend tests (:func:`synthetic_train_data`)."""
    return synthetic_train_data()


@pytest.fixture(scope="module")
def val() -> TrainData:
    """Validation groups drawn like :func:`data`'s, with another seed."""
    return synthetic_train_data(80, seed=1)
