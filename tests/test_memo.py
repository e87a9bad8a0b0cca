"""dockyard.memo: answers remembered for short keys, within a number of keys."""

from __future__ import annotations

from dockyard.memo import remembered


def test_short_keys_are_computed_once_and_long_ones_every_time():
    calls: list[object] = []

    @remembered(size=2, longest=5)
    def upper(key: str) -> str:
        calls.append(key)
        return key.upper()

    assert [upper("ab"), upper("ab"), upper("toolong"), upper("toolong")] == ["AB", "AB", "TOOLONG", "TOOLONG"]
    assert calls == ["ab", "toolong", "toolong"]
    upper("cd")
    upper("ef")  # past the size: "ab", the least recently used, is forgotten
    upper("ab")
    assert calls[-3:] == ["cd", "ef", "ab"]
    assert upper.cache_info().currsize == 2


def test_a_tuple_key_is_as_long_as_its_strings():
    calls: list[tuple[str, ...]] = []

    @remembered(size=8, longest=4)
    def joined(key: tuple[str, ...]) -> str:
        calls.append(key)
        return "".join(key)

    for key in [("ab", "cd"), ("ab", "cd"), ("ab", "cde"), ("ab", "cde")]:
        assert joined(key) == "".join(key)
    assert calls == [("ab", "cd"), ("ab", "cde"), ("ab", "cde")]
