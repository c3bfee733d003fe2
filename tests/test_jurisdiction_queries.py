"""Subtree queries on SQLite and PostgreSQL: the right nodes, sites and devices, from an index."""

from __future__ import annotations

import pytest
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from control_plane import inventory, sites
from control_plane.db import client, database
from control_plane.db.models import Device, JurisdictionNode
from control_plane.inventory import InventoryError
from control_plane.inventory_set import Inventory
from control_plane.inventory_store import import_inventory

LEVEL_BELOW = {"province": "city", "city": "district", "district": "town", "town": "village"}


def tree() -> Inventory:
    """Guangdong with cities whose codes are text prefixes of each other (4401 and 44010).

    Every node below the province has a site and every site two kiosks, so each subtree holds a
    known set of each.
    """
    rows = [("44", "province", None), ("4401", "city", "44"), ("4402", "city", "44")]
    rows += [("44010", "city", "44")]  # starts with "4401" as text; no child of it
    districts = [("440117", "4401"), ("440118", "4401"), ("440201", "4402"), ("440100", "44010")]
    rows += [(code, "district", parent) for code, parent in districts]
    for district, _ in districts:
        for town in (f"{district}001", f"{district}002"):
            rows.append((town, "town", district))
            rows += [(f"{town}{v:03d}", "village", town) for v in (1, 2)]
    result = Inventory()
    for code, level, parent in rows:
        result.add(
            inventory.node(
                {"code": code, "name": code, "level": level, "parent": parent or ""}, code
            )
        )
        if level == "province":
            continue
        result.add(
            inventory.site(
                {"code": f"s{code}", "name": code, "level": level, "node": code, "hours": "24/7"},
                code,
            )
        )
        for n in (1, 2):
            device = {"device_id": f"kiosk-{code}-{n}", "kind": "kiosk", "site": f"s{code}"}
            result.add(inventory.device(device, code))
    return result


def below(parents: dict[str, str | None], code: str) -> set[str]:
    """The codes of the subtree of ``code``, by walking parent links (the slow, obvious way)."""

    def ancestors(node: str | None) -> list[str]:
        chain = []
        while node is not None:
            chain.append(node)
            node = parents[node]
        return chain

    return {node for node in parents if code in ancestors(node)}


async def test_subtrees_hold_exactly_the_nodes_sites_and_devices_below(database_url: str) -> None:
    async with database(database_url):
        await import_inventory(tree())
        parents = {n.code: n.parent.code if n.parent else None for n in await _nodes()}

        for code in parents:
            root = await sites.node(code)
            expected = below(parents, code)
            nodes = {n.code for n in await sites.nodes_under(root.path)}
            site_codes = {s.code for s in await sites.sites_under(root.path)}
            devices = {d.device_id for d in await sites.devices_under(root.path)}

            assert nodes == expected, code
            assert site_codes == {f"s{c}" for c in expected if c != "44"}, code
            assert devices == {f"kiosk-{c}-{n}" for c in expected if c != "44" for n in (1, 2)}

        city = await sites.node("4401")
        assert await sites.devices_under(city.path).count() == 2 * (1 + 2 * (1 + 2 * 3))
        assert "44010" not in {n.code for n in await sites.nodes_under(city.path)}


async def test_moving_a_town_moves_its_villages_and_their_devices(database_url: str) -> None:
    moved = Inventory()
    moved.add(
        inventory.node(
            {"code": "440117001", "name": "moved", "level": "town", "parent": "440118"}, "move"
        )
    )
    async with database(database_url):
        await import_inventory(tree())
        summary = await import_inventory(moved)
        village = await JurisdictionNode.get(code="440117001002")
        old_district = {d.device_id for d in await sites.devices_under("/44/4401/440117/")}
        new_district = {d.device_id for d in await sites.devices_under("/44/4401/440118/")}

    assert summary.jurisdiction.updated == 1
    assert village.path == "/44/4401/440118/440117001/440117001002/"
    assert "kiosk-440117001002-1" not in old_district
    assert {"kiosk-440117001-1", "kiosk-440117001002-2"} <= new_district
    assert len(new_district) == 2 * (1 + 2 * 3) + 2 * 3


async def test_a_node_cannot_change_level_past_its_children(database_url: str) -> None:
    changed = Inventory()
    changed.add(
        inventory.node(
            {"code": "440117001", "name": "x", "level": "village", "parent": "440117"}, "here"
        )
    )
    async with database(database_url):
        await import_inventory(tree())
        with pytest.raises(InventoryError, match=r"^here: level: a village cannot be below a"):
            await import_inventory(changed)
        town = await JurisdictionNode.get(code="440117001")

    assert town.level == "town"


async def test_a_subtree_query_is_an_index_range(database_url: str) -> None:
    async with database(database_url) as ctx:
        await import_inventory(tree())
        query, params = parameterized(sites.devices_under("/44/4401/"))
        if database_url.startswith("sqlite"):
            _, rows = await client(ctx).execute_query(f"EXPLAIN QUERY PLAN {query}", params)
            plan = " | ".join(str(row["detail"]) for row in rows)
            assert "SCAN" not in plan
            assert "SEARCH jurisdiction USING COVERING INDEX" in plan
            assert "(path>? AND path<?)" in plan
            assert "SEARCH site USING COVERING INDEX idx_site_node_id" in plan
            assert "SEARCH device USING INDEX idx_device_site_id" in plan
        else:
            # Tiny tables make a sequential scan cheapest; forbid it to see the index is usable.
            async with in_transaction() as connection:
                await connection.execute_script("SET LOCAL enable_seqscan = off")
                _, rows = await connection.execute_query(f"EXPLAIN {query}", params)
            plan = " | ".join(str(row["QUERY PLAN"]) for row in rows)
            assert "Seq Scan" not in plan
            assert "Index Scan using jurisdiction_path_key on jurisdiction" in plan
            assert "(((path)::text >= '/44/4401/'::text) AND ((path)::text < '/44/44010'" in plan
            assert "idx_site_node_id" in plan
            assert "idx_device_site_id" in plan


def parameterized(query: QuerySet[Device]) -> tuple[str, list[object]]:
    """The SQL of ``query`` and its parameters (``sql(params_inline=True)`` leaves subqueries')."""
    query._choose_db_if_not_chosen()  # noqa: SLF001 - tortoise has no public way to both
    query._make_query()  # noqa: SLF001 - same
    sql, params = query.query.get_parameterized_sql()
    return sql, list(params)


async def _nodes() -> list[JurisdictionNode]:
    return await JurisdictionNode.all().prefetch_related("parent")


def test_the_test_tree_is_what_its_docstring_says() -> None:
    built = tree()
    built.check()
    levels = {spec.code: spec.level.value for spec in built.nodes}

    assert len(built.nodes) == 1 + 3 + 4 * (1 + 2 * 3)
    assert len(built.sites) == len(built.nodes) - 1
    assert len(built.devices) == 2 * len(built.sites)
    assert all(LEVEL_BELOW[levels[s.parent]] == s.level for s in built.nodes if s.parent)
