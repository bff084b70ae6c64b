"""Small-number suppression: no published figure can be pinned on fewer than `k` people.

Two rules, chosen with `privacy.suppression`:

**"groups" (the default), as the national user surveys report.** A group (everybody, or one
breakdown group) is reported for a question when at least k people in it answered that question,
with every count and share in it. A group with 1..k-1 answers shows nothing but "suppressed"; a
group of 0 shows n = 0. Secondary: the groups of a breakdown dimension add up to everybody, so
along every dimension whose total is published the hidden groups that are not empty must be
either none, or at least two that together hold at least k people. Otherwise one more group is
hidden: the smallest published non-empty one (ties: the first). So no hidden group's n or counts
can be worked out by subtracting the published groups from the total; what a reader can work out
is the hidden groups taken together, which is itself a group of at least k. Derived figures
(share positive, mean, median) of a published group are published too: every count they are
computed from is.

**"cells", the stricter per-cell rule** (for those who want no count below k anywhere):

1. **Primary.** A count of 1..k-1 people is withheld. A group (the people in one breakdown group
   who answered a question) with n of 1..k-1 publishes nothing but "suppressed": its n and every
   cell in it are withheld. A count of 0 is published: it concerns nobody, and hiding zeros would
   make every other hidden cell easier to pin down, not harder.
2. **Secondary.** Figures are linked by sums: the choices of a question add up to its n in every
   group (*rows*), and the groups of a breakdown dimension add up to the total, for every choice
   and for n (*columns*). Along every such line whose total is published, the withheld parts
   that are not 0 must be either none, or at least two that together hold at least k people.
   Otherwise one more part is withheld: the smallest published non-zero part (ties: the first),
   or, when the line has none left, its total (for a row that total is the group's n, so the
   whole group goes). This repeats until every line holds, so no withheld cell can be worked
   out by subtracting published cells from a published total, not even by chaining such
   subtractions line after line, and every derivable remainder is 0 or at least k.
3. **Derived figures** (shares, share positive, mean, median) are only published when every
   count they are computed from is published, and their base is at least k: they then add
   nothing a reader could not already compute. A mean is withheld when any step of its group's
   distribution is, because n, the mean and the published steps would let a reader solve for
   two hidden steps.

Not covered: combining several lines at once in a linear programme can bound a withheld cell
between limits (it cannot single it out while every line holds two hidden non-zero parts).
That is the accepted residual risk of cell suppression in official statistics.

The engine below is generic: it knows groups, partitions and counts, not questions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

__all__ = ["CELLS", "GROUPS", "RULES", "Mask", "publishable", "suppress"]

GROUPS: Final = "groups"
CELLS: Final = "cells"
RULES: Final = (GROUPS, CELLS)


def publishable(count: int, k: int) -> bool:
    """Whether a count may be shown on its own: 0, or at least k people."""
    return count == 0 or count >= k


@dataclass(frozen=True, slots=True)
class Mask:
    """What of one question may be published: `n_ok[group]`, `cell_ok[part][group][category]`."""

    n_ok: tuple[bool, ...]
    cell_ok: tuple[tuple[tuple[bool, ...], ...], ...]


def suppress(
    n: Sequence[int],
    dimensions: Sequence[Sequence[int]],
    partitions: Sequence[Sequence[Sequence[int]]],
    k: int,
    *,
    rule: str = GROUPS,
) -> Mask:
    """Decide what of one question may be published under `rule` ("groups" or "cells").

    `n[g]` is the number of people in group g who answered; group 0 is everybody. Each entry of
    `dimensions` lists the groups that split group 0 between them (every person in exactly one).
    `partitions[p][g][c]` counts the people of group g in category c; the categories of one
    partition split the group's n between them (a select_many question has one two-category
    partition per choice: picked / not picked).
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    if rule not in RULES:
        raise ValueError(f"unknown suppression rule {rule!r} (use {', '.join(RULES)})")
    _check_consistent(n, dimensions, partitions)
    if rule == GROUPS:
        # Only the n column decides; a published group publishes every cell in it.
        groups_ok = _suppress(n, dimensions, [], k).n_ok
        return Mask(
            n_ok=groups_ok,
            cell_ok=tuple(
                tuple((ok,) * len(row) for ok, row in zip(groups_ok, part, strict=True))
                for part in partitions
            ),
        )
    return _suppress(n, dimensions, partitions, k)


def _suppress(
    n: Sequence[int],
    dimensions: Sequence[Sequence[int]],
    partitions: Sequence[Sequence[Sequence[int]]],
    k: int,
) -> Mask:
    groups = len(n)
    n_ok = [publishable(v, k) for v in n]
    ok = [
        [[publishable(v, k) and n_ok[g] for v in row] for g, row in enumerate(part)]
        for part in partitions
    ]

    def hide_group(g: int) -> None:
        n_ok[g] = False
        for part_ok in ok:
            row = part_ok[g]
            for c in range(len(row)):
                row[c] = False

    changed = True
    while changed:
        changed = False
        # Columns of n: the groups of each dimension add up to everybody.
        for dim in dimensions:
            if n_ok[0]:
                victim = _violation(n[0], [(n[g], n_ok[g]) for g in dim], k)
                if victim is not None:
                    hide_group(dim[victim] if victim >= 0 else 0)
                    changed = True
        for p, part in enumerate(partitions):
            part_ok = ok[p]
            # Rows: the categories add up to the group's n.
            for g in range(groups):
                if not n_ok[g]:
                    continue
                row, row_ok = part[g], part_ok[g]
                victim = _violation(n[g], list(zip(row, row_ok, strict=True)), k)
                if victim is not None:
                    if victim >= 0:
                        row_ok[victim] = False
                    else:
                        hide_group(g)
                    changed = True
            # Columns: the groups of each dimension add up to the total, per category.
            for c in range(len(part[0]) if groups else 0):
                for dim in dimensions:
                    if not part_ok[0][c]:
                        break
                    victim = _violation(part[0][c], [(part[g][c], part_ok[g][c]) for g in dim], k)
                    if victim is not None:
                        if victim >= 0:
                            part_ok[dim[victim]][c] = False
                        else:
                            part_ok[0][c] = False
                        changed = True
    return Mask(
        n_ok=tuple(n_ok),
        cell_ok=tuple(tuple(tuple(row) for row in part_ok) for part_ok in ok),
    )


def _check_consistent(
    n: Sequence[int],
    dimensions: Sequence[Sequence[int]],
    partitions: Sequence[Sequence[Sequence[int]]],
) -> None:
    """The sums the rule relies on must hold, or a withheld cell could be "safe" by mistake."""
    if not n:
        raise ValueError("there must be a total group")
    for dim in dimensions:
        if sum(n[g] for g in dim) != n[0] or 0 in dim:
            raise ValueError("the groups of a dimension must split the total")
    for part in partitions:
        if len(part) != len(n):
            raise ValueError("every partition needs one row per group")
        for g, row in enumerate(part):
            if sum(row) != n[g] or len(row) != len(part[0]):
                raise ValueError("the categories of a partition must split the group's n")


def _violation(total: int, parts: Sequence[tuple[int, bool]], k: int) -> int | None:
    """For a line with a published total: None if it is safe, else the index of the part to
    withhold next, or -1 when only the total itself can go."""
    hidden = [v for v, shown in parts if not shown and v > 0]
    hidden_sum = total - sum(v for v, shown in parts if shown)
    if not hidden and hidden_sum == 0:
        return None
    if len(hidden) >= 2 and hidden_sum >= k:
        return None
    best: int | None = None
    for i, (v, shown) in enumerate(parts):
        if shown and v > 0 and (best is None or v < parts[best][0]):
            best = i
    return -1 if best is None else best
