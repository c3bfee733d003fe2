"""A database that refuses some records: a real trigger, standing for a defect in real life.

The trigger refuses every record whose payload holds ``POISON``, on SQLite and PostgreSQL, as a
database refuses what no column of it can hold; ``allow_poison`` drops it again, as the fix.
"""

from __future__ import annotations

from control_plane.db import client, database

POISON = "poison"

_REFUSE = {
    "sqlite": [
        (
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON record "
            f"WHEN NEW.payload LIKE '%{POISON}%' "
            "BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END"
        )
    ],
    "postgres": [
        (
            "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN "
            f"IF NEW.payload LIKE '%{POISON}%' THEN "
            "RAISE EXCEPTION 'refused by a test trigger'; END IF; RETURN NEW; END $$ "
            "LANGUAGE plpgsql"
        ),
        (
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON record "
            "FOR EACH ROW EXECUTE FUNCTION refuse_poison()"
        ),
    ],
}
_ALLOW = {
    "sqlite": ["DROP TRIGGER refuse_poison"],
    "postgres": ["DROP TRIGGER refuse_poison ON record", "DROP FUNCTION refuse_poison()"],
}


async def refuse_poison(database_url: str) -> None:
    await _execute(database_url, _REFUSE)


async def allow_poison(database_url: str) -> None:
    await _execute(database_url, _ALLOW)


async def _execute(database_url: str, statements: dict[str, list[str]]) -> None:
    dialect = "postgres" if database_url.startswith("postgres") else "sqlite"
    async with database(database_url) as ctx:
        for sql in statements[dialect]:
            await client(ctx).execute_script(sql)
