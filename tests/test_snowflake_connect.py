"""Opening a Snowflake session: database and schema from the connection, schemas created only when
missing.

Snowflake cannot run here: a recording session stands in for the connector's (Snowflake-only
branch), answering the metadata queries the way Snowflake would and recording every statement sent.
"""

from __future__ import annotations

import dataclasses

import pytest

from conftest import REPO
from customer_analytics import cli, config, runs
from customer_analytics import warehouse as wh


class Row(dict):
    def __getitem__(self, key):
        return dict.__getitem__(self, key)


class RecordingSession:
    """What warehouse.connect needs from a Snowpark session on Snowflake, recording the SQL it is
    sent."""

    def __init__(
        self, database: str | None, schema: str | None, schemas: set[str], can_create: bool = True
    ):
        self.database, self.schema, self.schemas, self.can_create = (
            database,
            schema,
            set(schemas),
            can_create,
        )
        self.sent: list[str] = []
        self.closed = False
        self.telemetry_enabled = True

    def get_current_database(self):
        return f'"{self.database}"' if self.database else None

    def get_current_schema(self):
        return f'"{self.schema}"' if self.schema else None

    def sql(self, text: str):
        self.sent.append(text)
        session = self

        class Result:
            def collect(self):
                if "INFORMATION_SCHEMA.SCHEMATA" in text:
                    name = text.split("SCHEMA_NAME = '")[1].split("'")[0]
                    return [Row(N=int(name in session.schemas))]
                if text.startswith("CREATE SCHEMA"):
                    if not session.can_create:
                        raise RuntimeError(
                            "SQL access control error: Insufficient privileges to operate on "
                            "database 'ANALYTICS'"
                        )
                    session.schemas.add(text.rsplit(".", 1)[1])
                return []

        return Result()

    def use_schema(self, name: str):
        self.sent.append(f"USE SCHEMA {name}")
        self.schema = name.split(".")[1]

    def close(self):
        self.closed = True


def snowflake_params(**over) -> config.Params:
    return dataclasses.replace(config.load(REPO), **{"connection": "prod", **over})


def test_database_and_schema_come_from_the_connection(monkeypatch):
    fake = RecordingSession("ANALYTICS", "SHOP", {"SHOP"})
    monkeypatch.setattr(wh, "_snowflake_session", lambda name: fake)
    session = wh.connect(snowflake_params())
    assert session is fake and wh.current_names(fake) == ("ANALYTICS", "SHOP")
    assert not any(s.startswith("CREATE") for s in fake.sent)  # nothing created when it exists
    assert fake.sent[-1] == "USE SCHEMA ANALYTICS.SHOP" and fake.telemetry_enabled is False


def test_an_experiment_schema_is_created_beside_production_when_missing(monkeypatch):
    fake = RecordingSession("ANALYTICS", "SHOP", {"SHOP"})
    monkeypatch.setattr(wh, "_snowflake_session", lambda name: fake)
    session = wh.connect(snowflake_params())
    exp = runs.Namespace(runs.EXPERIMENT, "horizon_days_30").schema("SHOP")
    wh.enter_schema(session, "ANALYTICS", exp)
    assert fake.sent[-2:] == [
        f"CREATE SCHEMA IF NOT EXISTS ANALYTICS.{exp}",
        f"USE SCHEMA ANALYTICS.{exp}",
    ]
    assert exp == "SHOP__X_HORIZON_DAYS_30"


def test_a_missing_schema_the_role_cannot_create_names_the_privilege(monkeypatch):
    fake = RecordingSession("ANALYTICS", "SHOP", {"SHOP"}, can_create=False)
    monkeypatch.setattr(wh, "_snowflake_session", lambda name: fake)
    with pytest.raises(
        wh.WarehouseError,
        match=r"Schema ANALYTICS\.REPORTING does not exist and could not be "
        r"created .*CREATE SCHEMA privilege on database ANALYTICS: "
        r"`GRANT CREATE SCHEMA ON DATABASE ANALYTICS TO ROLE",
    ):
        wh.connect(snowflake_params(schema="REPORTING"))


def test_a_connection_without_database_or_schema_says_how_to_set_them(monkeypatch):
    fake = RecordingSession("ANALYTICS", None, set())
    monkeypatch.setattr(wh, "_snowflake_session", lambda name: fake)
    with pytest.raises(
        wh.WarehouseError, match="names no schema. Fix: add `database = ...` and `schema = ...`"
    ):
        wh.connect(snowflake_params())
    assert fake.closed
    fake = RecordingSession(None, None, {"SHOP"})
    monkeypatch.setattr(wh, "_snowflake_session", lambda name: fake)
    assert (
        wh.connect(snowflake_params(database="ANALYTICS", schema="SHOP")) is fake
    )  # the parameters suffice


def test_database_and_schema_are_ordinary_parameters_on_the_command_line():
    values = cli.apply_overrides(
        config.read_env(REPO),
        cli.parse_overrides(["database=reporting"], ["--env--schema", "shop_eu"]),
    )
    params = config.validate(values, REPO)
    assert (params.database, params.schema) == ("REPORTING", "SHOP_EU")


def test_an_unknown_connection_says_where_the_connector_looks(monkeypatch, tmp_path):
    monkeypatch.setenv("SNOWFLAKE_HOME", str(tmp_path))  # no connections.toml there
    monkeypatch.delenv("SNOWFLAKE_CONNECTIONS", raising=False)
    with pytest.raises(
        wh.WarehouseError,
        match=r"Could not open Snowflake connection 'nope'.*connections.toml in "
        r"\$SNOWFLAKE_HOME or ~/.snowflake .*\$SNOWFLAKE_CONNECTIONS",
    ):
        wh.connect(snowflake_params(connection="nope"))
