from __future__ import annotations

from collections.abc import Sequence

import pytest

from bot.results.suppress import Mask, publishable, suppress

Rows = Sequence[Sequence[int]]

# (label, n per group, dimensions, one partition's rows, k, expected n_ok, expected cell_ok)
CASES: list[
    tuple[str, list[int], list[list[int]], list[list[int]], int, list[bool], list[list[bool]]]
] = [
    (
        "nothing small: all published",
        [20],
        [],
        [[10, 10]],
        5,
        [True],
        [[True, True]],
    ),
    (
        "one small cell: the only other non-zero cell goes too",
        [20],
        [],
        [[18, 2]],
        5,
        [True],
        [[False, False]],
    ),
    (
        "two small cells holding k together: nothing more",
        [30],
        [],
        [[10, 2, 3, 15]],
        5,
        [True],
        [[True, False, False, True]],
    ),
    (
        "two small cells below k together: the smallest other goes",
        [30],
        [],
        [[12, 1, 2, 15]],
        5,
        [True],
        [[False, False, False, True]],
    ),
    (
        "zeros are published and never picked to protect a cell",
        [30],
        [],
        [[10, 2, 0, 18]],
        5,
        [True],
        [[False, False, True, True]],
    ),
    (
        "a group below k shows nothing; the next smallest group goes with it",
        [20, 17, 3],
        [[1, 2]],
        [[10, 10], [8, 9], [2, 1]],
        5,
        [True, False, False],
        [[True, True], [False, False], [False, False]],
    ),
    (
        "column: a small cell hides the same category in the other group, and so on",
        [20, 10, 10],
        [[1, 2]],
        [[12, 8], [10, 0], [2, 8]],
        5,
        [True, False, False],
        [[False, False], [False, False], [False, False]],
    ),
    (
        "k=1 publishes everything",
        [3, 1, 2],
        [[1, 2]],
        [[2, 1], [1, 0], [1, 1]],
        1,
        [True, True, True],
        [[True, True], [True, True], [True, True]],
    ),
    (
        "an empty group publishes n=0",
        [10, 10, 0],
        [[1, 2]],
        [[5, 5], [5, 5], [0, 0]],
        5,
        [True, True, True],
        [[True, True], [True, True], [True, True]],
    ),
]


@pytest.mark.parametrize(
    ("n", "dims", "rows", "k", "n_ok", "cell_ok"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_suppress_table(
    n: list[int],
    dims: list[list[int]],
    rows: list[list[int]],
    k: int,
    n_ok: list[bool],
    cell_ok: list[list[bool]],
) -> None:
    mask = suppress(n, dims, [rows], k, rule="cells")
    assert mask == Mask(n_ok=tuple(n_ok), cell_ok=(tuple(tuple(row) for row in cell_ok),))


# (label, n per group, dimensions, k, expected n_ok): under "groups" only group sizes matter.
GROUP_CASES: list[tuple[str, list[int], list[list[int]], int, list[bool]]] = [
    ("a group of k shows, whatever its cells hold", [20, 15, 5], [[1, 2]], 5, [True] * 3),
    (
        "one small group: the smallest other group goes too",
        [20, 15, 3, 2],
        [[1, 2, 3]],
        5,
        [True, True, False, False],
    ),
    ("one small group and one other: both go", [20, 17, 3], [[1, 2]], 5, [True, False, False]),
    (
        "two small groups holding k together: nothing more",
        [30, 22, 4, 4],
        [[1, 2, 3]],
        5,
        [True, True, False, False],
    ),
    (
        "two small groups below k: the next smallest goes",
        [30, 26, 2, 2],
        [[1, 2, 3]],
        5,
        [True, False, False, False],
    ),
    (
        "empty groups are shown and never picked",
        [20, 17, 0, 3],
        [[1, 2, 3]],
        5,
        [True, False, True, False],
    ),
    (
        "a total below k hides every group that is not empty",
        [4, 4, 0],
        [[1, 2]],
        5,
        [False, False, True],
    ),
    (
        "each dimension is its own line",
        [20, 18, 2, 10, 10],
        [[1, 2], [3, 4]],
        5,
        [True, False, False, True, True],
    ),
]


@pytest.mark.parametrize(
    ("n", "dims", "k", "n_ok"),
    [case[1:] for case in GROUP_CASES],
    ids=[case[0] for case in GROUP_CASES],
)
def test_groups_rule_table(n: list[int], dims: list[list[int]], k: int, n_ok: list[bool]) -> None:
    mask = suppress(n, dims, [[[v] for v in n]], k)
    assert mask.n_ok == tuple(n_ok)
    assert mask.cell_ok == (tuple((ok,) for ok in n_ok),)


def test_groups_rule_shows_every_cell_of_a_group_of_k() -> None:
    n, dims, rows = [20, 15, 5], [[1, 2]], [[18, 2], [14, 1], [4, 1]]
    assert suppress(n, dims, [rows], 5) == Mask((True,) * 3, (((True, True),) * 3,))
    cells = suppress(n, dims, [rows], 5, rule="cells")
    assert not all(ok for row in cells.cell_ok[0] for ok in row)


def test_column_secondary_hides_a_second_group() -> None:
    # Group 1 has 2 people in category 0 (hidden); category 0 by group must hide another cell,
    # else 2 = total - the other groups. Rows then hide one more cell each.
    n = [60, 20, 20, 20]
    rows = [[32, 28], [2, 18], [15, 5], [15, 5]]
    mask = suppress(n, [[1, 2, 3]], [rows], 5, rule="cells")
    column = [mask.cell_ok[0][g][0] for g in (1, 2, 3)]
    assert column.count(False) >= 2
    for g in (1, 2, 3):
        hidden = [v for v, ok in zip(rows[g], mask.cell_ok[0][g], strict=True) if not ok and v]
        assert not hidden or (len(hidden) >= 2 and sum(hidden) >= 5)


def test_hidden_secondary_cell_is_not_left_alone_in_its_row() -> None:
    # A cell hidden only to protect its column must not be the only hidden one in its row.
    n = [14, 7, 7]
    rows = [[9, 5], [7, 0], [2, 5]]
    mask = suppress(n, [[1, 2]], [rows], 5, rule="cells")
    for g in range(3):
        if not mask.n_ok[g]:
            continue
        hidden = [v for v, ok in zip(rows[g], mask.cell_ok[0][g], strict=True) if not ok and v]
        assert not hidden or (len(hidden) >= 2 and sum(hidden) >= 5), (g, mask)


@pytest.mark.parametrize(
    ("n", "dims", "rows"),
    [
        ([10, 4, 5], [[1, 2]], [[5, 5], [2, 2], [3, 2]]),  # groups do not add up
        ([10], [], [[5, 4]]),  # categories do not add up
        ([10, 10], [[1]], [[5, 5]]),  # a row missing
        ([], [], []),
    ],
)
def test_inconsistent_input_is_refused(
    n: list[int], dims: list[list[int]], rows: list[list[int]]
) -> None:
    with pytest.raises(ValueError):
        suppress(n, dims, [rows] if rows else [], 5)


def test_k_must_be_positive() -> None:
    with pytest.raises(ValueError):
        suppress([1], [], [], 0)


def test_unknown_rule() -> None:
    with pytest.raises(ValueError, match="unknown suppression rule"):
        suppress([1], [], [], 5, rule="rows")


@pytest.mark.parametrize(
    ("count", "k", "expected"),
    [(0, 5, True), (1, 5, False), (4, 5, False), (5, 5, True), (1, 1, True)],
)
def test_publishable(count: int, k: int, expected: bool) -> None:
    assert publishable(count, k) is expected
