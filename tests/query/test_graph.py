"""query.graph over SQLAlchemy models, on SQLite and PostgreSQL: fields, relations, filters, pages, errors."""

from __future__ import annotations

from typing import Any

import pytest

from stepwork import StepworkError
from stepwork.query import Query


def ids(result: dict[str, Any]) -> list[str]:
    return [row["id"] for row in result["data"]]


async def test_fields_pick_columns_and_primary_keys_always_come(query: Query) -> None:
    """Only the fields asked come back, with the primary key; no fields means every column."""
    result = await query.graph("brand", ["name"], {"id": "b1"})
    assert result == {"data": [{"id": "b1", "name": "Acme"}], "metadata": {"count": 1, "skip": 0, "take": None}}
    everything = await query.graph("brands", filters={"id": "b3"})
    assert everything["data"] == [{"id": "b3", "name": "Zenith", "rank": 3}]


async def test_dot_paths_read_relations_both_ways(query: Query) -> None:
    """`products.*` reads every column of the related rows; `brand.name` one column of a single relation."""
    result = await query.graph("brand", ["name", "products.*"], {"id": ["b1", "b3"]})
    assert result["data"] == [
        {"id": "b1", "name": "Acme", "products": [
            {"id": "p1", "name": "Anvil", "price": 50, "brand_id": "b1"},
            {"id": "p2", "name": "Rocket", "price": 900, "brand_id": "b1"}]},
        {"id": "b3", "name": "Zenith", "products": []},
    ]
    products = await query.graph("product", ["name", "brand.name"], {"id": ["p3", "p4"]})
    assert products["data"] == [{"id": "p3", "name": "Beaker", "brand": {"id": "b2", "name": "acme labs"}},
                                {"id": "p4", "name": "Orphan", "brand": None}]
    nested = await query.graph("product", ["brand.products.name"], {"id": "p1"})
    assert nested["data"][0]["brand"]["products"] == [{"id": "p1", "name": "Anvil"}, {"id": "p2", "name": "Rocket"}]


@pytest.mark.parametrize("filters, expected", [
    ({"name": "Acme"}, ["b1"]),
    ({"id": ["b2", "b3", "nope"]}, ["b2", "b3"]),
    ({"rank": None}, ["b4"]),
    ({"rank": {"$eq": 2}}, ["b2"]),
    ({"rank": {"$eq": None}}, ["b4"]),
    ({"rank": {"$ne": 1}}, ["b2", "b3", "b4"]),  # $ne keeps the rows where the field is null
    ({"rank": {"$ne": None}}, ["b1", "b2", "b3"]),
    ({"id": {"$in": ["b1", "b4"]}}, ["b1", "b4"]),
    ({"rank": {"$nin": [1, 2]}}, ["b3", "b4"]),
    ({"rank": {"$gt": 2}}, ["b3"]),
    ({"rank": {"$gte": 2}}, ["b2", "b3"]),
    ({"rank": {"$lt": 2}}, ["b1"]),
    ({"rank": {"$lte": 2}}, ["b1", "b2"]),
    ({"rank": {"$gt": 1, "$lt": 3}}, ["b2"]),
    ({"name": {"$like": "A%"}}, ["b1"]),  # case-sensitive on both databases
    ({"name": {"$like": "%e_i%"}}, ["b3"]),
    ({"name": {"$like": "100\\%\\_%"}}, ["b4"]),  # escaped wildcards are literal
    ({"name": {"$like": "100%"}}, ["b4"]),
    ({"name": {"$ilike": "acme%"}}, ["b1", "b2"]),
    ({"name": {"$ilike": "%LABS"}}, ["b2"]),
    ({"$or": [{"name": "Acme"}, {"rank": 3}]}, ["b1", "b3"]),
    ({"$and": [{"rank": {"$gte": 1}}, {"name": {"$ilike": "a%"}}]}, ["b1", "b2"]),
    ({"products": {"price": {"$gt": 100}}}, ["b1"]),
    ({"products.name": {"$in": ["Beaker", "Anvil"]}}, ["b1", "b2"]),
])
async def test_filter_operators(query: Query, filters: dict[str, Any], expected: list[str]) -> None:
    """Each filter form selects exactly the expected rows, and the count agrees."""
    result = await query.graph("brand", ["id"], filters)
    assert ids(result) == expected
    assert result["metadata"]["count"] == len(expected)


async def test_filter_on_a_single_relation(query: Query) -> None:
    """A many-to-one relation filters with the related row's fields."""
    result = await query.graph("product", ["id"], {"brand": {"name": {"$ilike": "acme%"}}})
    assert ids(result) == ["p1", "p2", "p3"]


async def test_pagination_pages_orders_and_counts_all_matches(query: Query) -> None:
    """skip/take return one page; count is the number of all matching rows; order sorts, ties by key."""
    page = await query.graph("product", ["name"], pagination={"skip": 1, "take": 2, "order": {"price": "DESC"}})
    assert [row["name"] for row in page["data"]] == ["Anvil", "Beaker"]
    assert page["metadata"] == {"count": 4, "skip": 1, "take": 2}
    filtered = await query.graph("product", ["id"], {"price": {"$lt": 100}}, {"take": 1, "order": {"name": "asc"}})
    assert ids(filtered) == ["p1"] and filtered["metadata"]["count"] == 3
    empty = await query.graph("product", ["id"], pagination={"skip": 10})
    assert empty == {"data": [], "metadata": {"count": 4, "skip": 10, "take": None}}


@pytest.mark.parametrize("call, mentions", [
    ({"entity": "brandz"}, ['"brandz"', "brand, product, workflow_execution"]),
    ({"entity": "brand", "fields": ["colour"]}, ['"colour"', "id, name, rank", "products"]),
    ({"entity": "brand", "fields": ["stock.*"]}, ['relation "stock"', "products"]),
    ({"entity": "brand", "fields": ["products.colour"]}, ['"colour"', "price"]),
    ({"entity": "brand", "filters": {"colour": "red"}}, ['"colour"', "id, name, rank"]),
    ({"entity": "brand", "filters": {"rank": {"$between": [1, 2]}}}, ['"$between"', "$eq, $ne, $in, $nin"]),
    ({"entity": "brand", "filters": {"products": {"colour": 1}}}, ['"products.colour"', "price"]),
    ({"entity": "brand", "filters": {"rank": {"$in": 3}}}, ["$in takes a list"]),
    ({"entity": "brand", "pagination": {"limit": 3}}, ['"limit"', "skip, take, order"]),
    ({"entity": "brand", "pagination": {"take": -1}}, ["take"]),
    ({"entity": "brand", "pagination": {"order": {"colour": "ASC"}}}, ['"colour"']),
    ({"entity": "brand", "pagination": {"order": {"name": "UP"}}}, ['"UP"']),
])
async def test_unknown_names_raise_invalid_data_naming_them(query: Query, call: dict[str, Any],
                                                            mentions: list[str]) -> None:
    """An unknown entity, field, relation, operator or pagination key is invalid_data naming it and what exists."""
    with pytest.raises(StepworkError) as err:
        await query.graph(**call)
    assert err.value.type == "invalid_data"
    for text in mentions:
        assert text in err.value.message


def test_graph_sync_and_entities(query: Query) -> None:
    """graph_sync is the same call without an event loop; entities lists the singular names."""
    assert query.entities() == ["brand", "product", "workflow_execution"]
    assert ids(query.graph_sync("brand", ["id"], {"rank": {"$gte": 3}})) == ["b3"]
