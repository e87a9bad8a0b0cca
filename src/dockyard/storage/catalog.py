"""The list of repositories: every directory under ``repositories/`` that holds ``_`` entries.

The walk never descends into a repository's ``_layers``, ``_manifests`` or
``_uploads``: those hold most of the tree and none of the names.

Names come in full-string order, which is not the order of a depth-first walk:
``a-b`` sorts between ``a`` and ``a/b``. The walk is a best-first merge instead: a
heap of the sorted child lists met so far, each keyed by the full name of its next
child (a lower bound of every name below that child). A name is final once it is the
smallest key and no listing is outstanding, so a page stops after the names it needs,
and subtrees whose names all sort at or before ``last`` are never listed.
Directories are listed a batch at a time (one :meth:`StorageDriver.list_sorted` call):
as many of the smallest keys as names still wanted.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections.abc import Callable

from dockyard.storage import paths
from dockyard.storage.driver import StorageDriver

_HIDDEN = (paths.RESERVED_PREFIX, ".")


def _is_repository(children: list[str]) -> bool:
    at = bisect.bisect_left(children, paths.RESERVED_PREFIX)
    return at < len(children) and children[at].startswith(paths.RESERVED_PREFIX)


def _kept_children(children: list[str], rest: str) -> tuple[list[str], int]:
    """Of ``directory``'s sorted ``children``, where ``last`` is ``directory/rest``: those
    whose subtree may hold a name after ``last``, as a short list and the index from
    which every child counts (all children sorting after ``rest``)."""
    start = bisect.bisect_right(children, rest)
    # A child at or before ``rest`` matters only when it is a prefix of ``rest`` that
    # ``/`` extends or that a character sorting before ``/`` (``-``, ``.``) follows.
    first = rest.split("/", 1)[0]
    low = []
    for end in range(1, len(first) + 1):
        child = first[:end]
        if rest[end:end + 1] <= "/":
            at = bisect.bisect_left(children, child)
            if at < len(children) and children[at] == child:
                low.append(child)
    return low, start


async def walk(
    driver: StorageDriver,
    last: str = "",
    count: int | None = None,
    visible: Callable[[str], bool] | None = None,
) -> list[str]:
    """The first ``count`` (all when ``None``) sorted repository names after ``last``
    that ``visible`` accepts."""
    found: list[str] = []
    if count is not None and count <= 0:
        return found
    # (key, tie-breaker, sorted names or None for a repository name, index, parent).
    heap: list[tuple[str, int, list[str] | None, int, str]] = []
    order = itertools.count()

    def push_children(names: list[str], index: int, parent: str) -> None:
        while index < len(names) and names[index].startswith(_HIDDEN):
            index += 1
        if index < len(names):
            key = f"{parent}/{names[index]}" if parent else names[index]
            heapq.heappush(heap, (key, next(order), names, index, parent))

    pending = [""]  # repositories/ itself
    while pending:
        directories = {paths.repository(name) if name else paths.REPOSITORIES: name for name in pending}
        listings = await driver.list_sorted(list(directories))
        for directory, name in directories.items():
            children = listings.get(directory)
            if children is None:
                continue
            if name and _is_repository(children):
                heapq.heappush(heap, (name, next(order), None, 0, ""))
            if not last:
                push_children(children, 0, name)
            elif not name or last.startswith(f"{name}/"):
                low, start = _kept_children(children, last[len(name) + 1:] if name else last)
                push_children(low, 0, name)
                push_children(children, start, name)
            else:
                # Listed, so not all at or before ``last``: all after it.
                push_children(children, 0, name)
        pending = []
        while heap and (count is None or len(found) < count):
            key, _, names, index, parent = heap[0]
            if names is None:
                if pending:
                    break  # a directory being listed may hold smaller names
                heapq.heappop(heap)
                if key > last and (visible is None or visible(key)):
                    found.append(key)
            elif count is None or len(pending) < count - len(found):
                heapq.heappop(heap)
                pending.append(key)
                push_children(names, index + 1, parent)
            else:
                break
    return found


async def repositories(driver: StorageDriver) -> list[str]:
    return await walk(driver)


async def is_repository(driver: StorageDriver, name: str) -> bool:
    """Whether the catalog lists ``name`` (a folder of only other names' folders is no repository)."""
    folder = paths.repository(name)
    return _is_repository((await driver.list_sorted([folder])).get(folder, []))
