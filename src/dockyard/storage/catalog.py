"""The list of repositories: every directory under ``repositories/`` that holds ``_`` entries.

The walk never descends into a repository's ``_layers``, ``_manifests`` or
``_uploads``: those hold most of the tree and none of the names.

Names come in full-string order, which is not the order of a depth-first walk:
``a-b`` sorts between ``a`` and ``a/b``. The walk is a best-first merge instead: a
heap of the sorted child lists met so far, each keyed by the full name of its next
child (a lower bound of every name below that child). A name is final once it is the
smallest key and no listing is outstanding, so a page stops after the names it needs,
and subtrees whose names all sort at or before ``last`` are never listed.
Directories are listed a batch at a time (concurrently): as many of the smallest keys
as names still wanted. Each listing is a page (:meth:`StorageDriver.list_page`) of at
most that many children, after ``last`` within the directories on its way; a full page
leaves a key for the rest of its directory. So on object storage a page of the catalog
costs requests and keys by the page, not by the number of repositories.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections.abc import Callable

from dockyard.storage import paths
from dockyard.storage.driver import StorageDriver

_HIDDEN = (paths.RESERVED_PREFIX, ".")
# Sorts just before the reserved names: a listing after it starts at them.
_BEFORE_RESERVED = chr(ord(paths.RESERVED_PREFIX) - 1)


def _is_repository(children: list[str]) -> bool:
    at = bisect.bisect_left(children, paths.RESERVED_PREFIX)
    return at < len(children) and children[at].startswith(paths.RESERVED_PREFIX)


def _below_last(rest: str) -> list[str]:
    """The children that sort at or before ``rest`` (``last`` within their directory) and
    whose subtree may still hold a name after ``last``: the prefixes of its first component
    that ``/`` or a character sorting before it (``-``, ``.``) follows there, if they exist."""
    first = rest.split("/", 1)[0].split("\0", 1)[0]  # no stored name holds a NUL
    return [first[:end] for end in range(1, len(first) + 1) if rest[end:end + 1] <= "/"]


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
    # (key, tie-breaker, entry): a repository name (None), a listed child to descend into
    # (sorted names, index, parent), or the rest of a directory's children after one
    # (the directory's name, the child). Keys are full names.
    heap: list[tuple[str, int, None | tuple[list[str], int, str] | tuple[str, str]]] = []
    order = itertools.count()

    def push_children(names: list[str], index: int, parent: str) -> None:
        while index < len(names) and names[index].startswith(_HIDDEN):
            index += 1
        if index < len(names):
            heapq.heappush(heap, (_full(parent, names[index]), next(order), (names, index, parent)))

    def directory(name: str) -> str:
        return paths.repository(name) if name else paths.REPOSITORIES

    def start_after(name: str, after: str | None) -> str:
        """Where the listing of ``name`` starts (``after`` ``None``: its first listing)."""
        if after is None and last and (not name or last.startswith(f"{name}/")):
            # On the way to ``last``: only what sorts after it, and its few prefixes.
            rest = last[len(name) + 1:] if name else last
            push_children(_below_last(rest), 0, name)
            return rest
        return after or ""

    async def names_repository(name: str, children: list[str], wanted: int | None) -> bool:
        """Whether ``name`` is a repository, given the first page of its folder."""
        if _is_repository(children):
            return True
        if wanted is None or len(children) < wanted or children[-1] > paths.RESERVED_PREFIX:
            return False
        # A full page of names sorting before the reserved ones: ask for these alone.
        return _is_repository(await driver.list_page(directory(name), _BEFORE_RESERVED, 1))

    pending: list[tuple[str, str | None]] = [("", None)]  # repositories/ itself
    while pending:
        wanted = None if count is None else count - len(found)
        starts = [start_after(name, after) for name, after in pending]
        pages = await driver.list_pages([(directory(name), start, wanted) for (name, _), start in zip(pending, starts, strict=True)])
        for (name, after), start, children in zip(pending, starts, pages, strict=True):
            if after is None and name and not start and await names_repository(name, children, wanted):
                heapq.heappush(heap, (name, next(order), None))
            push_children(children, 0, name)
            if wanted is not None and len(children) == wanted:
                heapq.heappush(heap, (_full(name, children[-1]), next(order), (name, children[-1])))
        pending = []
        while heap and (count is None or len(found) < count):
            key, _, entry = heap[0]
            if entry is None:
                if pending:
                    break  # a directory being listed may hold smaller names
                heapq.heappop(heap)
                if key > last and (visible is None or visible(key)):
                    found.append(key)
            elif count is None or len(pending) < count - len(found):
                heapq.heappop(heap)
                if len(entry) == 3:
                    names, index, parent = entry
                    pending.append((key, None))
                    push_children(names, index + 1, parent)
                else:
                    pending.append(entry)
            else:
                break
    return found


def _full(parent: str, child: str) -> str:
    return f"{parent}/{child}" if parent else child


async def repositories(driver: StorageDriver) -> list[str]:
    return await walk(driver)


async def is_repository(driver: StorageDriver, name: str) -> bool:
    """Whether the catalog lists ``name`` (a folder of only other names' folders is no repository)."""
    folder = paths.repository(name)
    return _is_repository((await driver.list_sorted([folder])).get(folder, []))
