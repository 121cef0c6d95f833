"""The exact Pareto front (the non-dominated set) of points, every objective maximised.

One point dominates another when it is at least as good in every objective and better in one;
equal points do not dominate each other, so both stay on the front. Two and three objectives
take a sort and a sweep (O(n log n)); more take a block-nested-loop skyline over the points in
order of decreasing sum (then values), where a point can only be dominated by one that came before it.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from itertools import groupby

Point = Sequence[float]


def front(points: Sequence[Point]) -> list[int]:
    """Return the indexes of the non-dominated points, in increasing order."""
    if not points:
        return []
    dimensions = len(points[0])
    if dimensions == 1:
        best = max(p[0] for p in points)
        return [i for i, p in enumerate(points) if p[0] == best]
    if dimensions <= 3:
        return _sweep(points, dimensions)
    return _skyline(points)


def _sweep(points: Sequence[Point], dimensions: int) -> list[int]:
    # By x, best first. A point is dominated by a point of a better x that is at least as good
    # in y and z (a staircase of the front so far answers that with one bisection), or by a
    # point of the same x that dominates it in y and z.
    if dimensions == 2:
        keyed = [(p[0], p[1], 0.0, i) for i, p in enumerate(points)]
    else:
        keyed = [(p[0], p[1], p[2], i) for i, p in enumerate(points)]
    keyed.sort(reverse=True)
    # The staircase: the (y, z) front of the points seen, y increasing and z decreasing.
    stair_y: list[float] = []
    stair_z: list[float] = []
    kept: list[int] = []
    for _, group in groupby(keyed, key=lambda k: k[0]):
        survivors = []
        # Within the group, by y then z best first: a point is dominated in (y, z) by one before
        # it unless it equals it.
        best_z = None
        previous = None
        for _, y, z, index in group:
            position = bisect_left(stair_y, y)
            if position < len(stair_y) and stair_z[position] >= z:
                continue
            if previous is not None and (y, z) != previous and best_z is not None and best_z >= z:
                continue
            if previous is None or (y, z) != previous:
                best_z = z if best_z is None else max(best_z, z)
                previous = (y, z)
            survivors.append((y, z, index))
        for y, z, index in survivors:
            kept.append(index)
            _climb(stair_y, stair_z, y, z)
    kept.sort()
    return kept


def _climb(stair_y: list[float], stair_z: list[float], y: float, z: float) -> None:
    """Put (y, z) on the staircase, removing the steps it covers."""
    position = bisect_left(stair_y, y)
    if position < len(stair_y) and stair_z[position] >= z:
        return
    # The steps at or below y whose z is at most z are covered; they sit just before `position`
    # (z decreases with y), together with a step at exactly y.
    end = bisect_right(stair_y, y)
    start = position
    while start > 0 and stair_z[start - 1] <= z:
        start -= 1
    stair_y[start:end] = [y]
    stair_z[start:end] = [z]


def _dominates(a: Point, b: Point) -> bool:
    return all(x >= y for x, y in zip(a, b, strict=True)) and any(x > y for x, y in zip(a, b, strict=True))


def _skyline(points: Sequence[Point]) -> list[int]:
    # A dominating point has a sum at least as large (float rounding is monotonic, so perhaps
    # equal) and is lexicographically larger: in this order it always comes first.
    order = sorted(range(len(points)), key=lambda i: (sum(points[i]), *points[i]), reverse=True)
    kept: list[int] = []
    for index in order:
        point = points[index]
        for position, member in enumerate(kept):
            if _dominates(points[member], point):
                # The front member that dominated goes first: it is likely to dominate the next too.
                if position:
                    kept.insert(0, kept.pop(position))
                break
        else:
            kept.append(index)
    kept.sort()
    return kept
