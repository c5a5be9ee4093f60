from __future__ import annotations

from warehouse.migrate import _statements, load


def test_migration_files_are_numbered_without_gaps() -> None:
    for engine in ("postgres", "clickhouse"):
        versions = [m.version for m in load(engine)]
        assert versions == list(range(1, len(versions) + 1)), engine


def test_clickhouse_statements_ignore_semicolons_in_comments() -> None:
    sql = "-- a; b\nCREATE TABLE x (a Int8);\n  -- c; d\nALTER TABLE x ADD COLUMN b Int8;\n"
    assert _statements(sql) == ["CREATE TABLE x (a Int8)", "ALTER TABLE x ADD COLUMN b Int8"]
