"""The compiled verification loop (kaipiao.ledger._walk) against the Python reference
(chain.event_hash and merkle.Frontier), on generated chains, whole and split into segments."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaipiao.ledger import merkle
from kaipiao.ledger._walk import Walker  # built by setup.py; the tests require it
from kaipiao.ledger.chain import GENESIS, event_hash

texts = st.text(max_size=40)
events = st.lists(
    st.tuples(st.none() | texts, st.none() | texts, texts, texts, st.text(max_size=300)),
    min_size=1,
    max_size=40,
)


def _chain(specs: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    rows, prev = [], GENESIS
    for seq, (invoice_id, seller_id, type_, time, payload) in enumerate(specs, start=1):
        digest = event_hash(seq, invoice_id, seller_id, type_, time, payload, prev)
        rows.append((seq, invoice_id, seller_id, type_, time, payload, prev, digest))
        prev = digest
    return rows


def _heads(rows: list[tuple[Any, ...]]) -> dict[int, bytes]:
    frontier, heads = merkle.Frontier(), {}
    for row in rows:
        frontier.add(bytes.fromhex(row[7]))
        heads[row[0]] = frontier.root()
    return heads


@settings(max_examples=60, deadline=None)
@given(specs=events, data=st.data())
def test_a_whole_chain_checks_with_the_reference_tree_heads(
    specs: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    rows = _chain(specs)
    reference = _heads(rows)
    sizes = sorted(data.draw(st.sets(st.integers(1, len(rows) + 3), max_size=5)))
    walker = Walker(sizes)
    assert walker.feed_rows(rows) == len(rows)
    assert walker.bad is None
    assert (walker.expected, walker.prev) == (len(rows) + 1, rows[-1][7])
    assert walker.heads() == {s: reference[s] for s in sizes if s in reference}
    assert walker.root() == reference[len(rows)]


@settings(max_examples=60, deadline=None)
@given(specs=events, data=st.data())
def test_segments_absorbed_give_the_same_tree(
    specs: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    rows = _chain(specs)
    cut = data.draw(st.integers(1, len(rows)))
    first, later = Walker([len(rows)]), Walker((), expected=cut + 1, prev=rows[cut - 1][7],
                                               keep_leaves=True)  # fmt: skip
    assert first.feed_rows(rows[:cut]) == cut
    assert later.feed_rows(rows[cut:]) == len(rows) - cut
    first.absorb(later.take_leaves())
    assert first.heads() == {len(rows): _heads(rows)[len(rows)]}
    assert (later.expected, later.prev) == (len(rows) + 1, rows[-1][7])


@settings(max_examples=80, deadline=None)
@given(specs=events, data=st.data())
def test_the_first_changed_event_is_where_the_walk_stops(
    specs: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    rows = _chain(specs)
    at = data.draw(st.integers(0, len(rows) - 1))
    field = data.draw(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7]))
    row = list(rows[at])
    if field == 0:
        row[0] += data.draw(st.sampled_from([-1, 1, 2]))
    elif row[field] is None:
        row[field] = ""
    else:
        row[field] += "x"
    rows[at] = tuple(row)
    walker = Walker([])
    assert walker.feed_rows(rows) == at
    assert walker.bad == rows[at]
    assert walker.expected == at + 1


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="ascending"):
        Walker([3, 2])
    with pytest.raises(ValueError, match="64-character"):
        Walker([], expected=5, prev="abc", keep_leaves=True)
    with pytest.raises(ValueError, match="keep_leaves"):
        Walker([], expected=5, prev="0" * 64)
    with pytest.raises(ValueError, match="32-byte"):
        Walker([]).absorb(b"short")
    with pytest.raises(ValueError, match="binary COPY"):
        Walker([]).feed_copy(b"seq\tnot binary copy data at all\n")
    with pytest.raises(RuntimeError, match="no SQLite"):
        Walker([]).step_sqlite(10)
