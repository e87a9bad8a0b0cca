"""``n``/``last`` pagination of tag and catalog lists, and their JSON (unit tests of ``pagination``)."""

from __future__ import annotations

import pytest

from dockyard.api import errors
from dockyard.api.errors import RegistryError
from dockyard.api.pagination import list_response, page

ITEMS = ["a", "b", "c", "d", "e"]
PATH = "/v2/library/ubuntu/tags/list"


def test_no_parameters_returns_everything_without_link() -> None:
    assert page(ITEMS, None, None, PATH, 100) == (ITEMS, {})


def test_empty_n_and_last_are_absent() -> None:
    assert page(ITEMS, "", "", PATH, 100) == (ITEMS, {})


def test_first_page_has_a_next_link() -> None:
    assert page(ITEMS, "2", None, PATH, 100) == (
        ["a", "b"],
        {"Link": f'<{PATH}?n=2&last=b>; rel="next"'},
    )


def test_following_the_link_walks_every_page() -> None:
    assert page(ITEMS, "2", "b", PATH, 100) == (["c", "d"], {"Link": f'<{PATH}?n=2&last=d>; rel="next"'})
    assert page(ITEMS, "2", "d", PATH, 100) == (["e"], {})


def test_last_page_that_is_exactly_full_has_no_link() -> None:
    assert page(ITEMS, "2", "c", PATH, 100) == (["d", "e"], {})
    assert page(ITEMS, "5", None, PATH, 100) == (ITEMS, {})


def test_n_larger_than_the_list() -> None:
    assert page(ITEMS, "50", None, PATH, 100) == (ITEMS, {})


def test_last_not_in_the_list_starts_after_it() -> None:
    assert page(ITEMS, "2", "bb", PATH, 100) == (["c", "d"], {"Link": f'<{PATH}?n=2&last=d>; rel="next"'})
    assert page(ITEMS, None, "0", PATH, 100) == (ITEMS, {})


@pytest.mark.parametrize("last", ["e", "f", "zzz"])
def test_last_at_or_past_the_end_returns_nothing(last: str) -> None:
    assert page(ITEMS, "2", last, PATH, 100) == ([], {})
    assert page(ITEMS, None, last, PATH, 100) == ([], {})


def test_n_zero_returns_an_empty_list_without_link() -> None:
    assert page(ITEMS, "0", None, PATH, 100) == ([], {})
    assert page(ITEMS, "0", "b", PATH, 100) == ([], {})


@pytest.mark.parametrize("n", ["-1", "-100", "abc", "1.5", "2x", "0x10", "1e3", "--1", "nan", " 2", "+2", "1_000", "\u0663"])
def test_invalid_n(n: str) -> None:
    with pytest.raises(RegistryError) as caught:
        page(ITEMS, n, None, PATH, 100)
    assert caught.value.error is errors.PAGINATION_NUMBER_INVALID
    assert caught.value.error.code == "PAGINATION_NUMBER_INVALID"
    assert caught.value.status == 400
    assert caught.value.detail == {"n": n}


def test_huge_n_is_invalid_or_capped_but_never_crashes() -> None:
    # 10**5000 is past Python's default int parsing limit: a client error, not a 500.
    with pytest.raises(RegistryError) as caught:
        page(ITEMS, "9" * 5000, None, PATH, 100)
    assert caught.value.error is errors.PAGINATION_NUMBER_INVALID
    assert caught.value.detail == {"n": "9" * 50}
    assert page(ITEMS, "9" * 100, None, PATH, 3) == (["a", "b", "c"], {"Link": f'<{PATH}?n=3&last=c>; rel="next"'})


def test_n_is_capped_at_the_limit() -> None:
    items = [f"tag{index:03d}" for index in range(10)]
    assert page(items, "1000", None, PATH, 4) == (
        items[:4],
        {"Link": f'<{PATH}?n=4&last=tag003>; rel="next"'},
    )


def test_no_n_uses_the_limit() -> None:
    items = [f"tag{index:03d}" for index in range(10)]
    assert page(items, None, None, PATH, 4) == (items[:4], {"Link": f'<{PATH}?n=4&last=tag003>; rel="next"'})
    assert page(items, None, "tag007", PATH, 4) == (items[8:], {})


def test_link_escapes_repository_names() -> None:
    repositories = ["library/alpine", "library/ubuntu", "team/app"]
    selected, headers = page(repositories, "1", None, "/v2/_catalog", 100)
    assert selected == ["library/alpine"]
    assert headers == {"Link": '</v2/_catalog?n=1&last=library%2Falpine>; rel="next"'}
    # The escaped value, once decoded, is the ``last`` of the next page.
    assert page(repositories, "1", "library/alpine", "/v2/_catalog", 100)[0] == ["library/ubuntu"]


def test_empty_list() -> None:
    assert page([], None, None, PATH, 100) == ([], {})
    assert page([], "10", "a", PATH, 100) == ([], {})


def test_items_are_not_mutated() -> None:
    items = list(ITEMS)
    page(items, "2", "a", PATH, 100)
    assert items == ITEMS


def test_list_response_is_json_with_its_headers() -> None:
    response = list_response("tags", ["a", "b-1.0"], {"Link": "<x>"}, name="library/ubuntu")
    assert response.body == b'{"name":"library/ubuntu","tags":["a","b-1.0"]}'
    assert response.content_type == "application/json" and response.charset == "utf-8"
    assert response.headers["Link"] == "<x>"


def test_list_response_leaves_out_names_that_were_not_utf8() -> None:
    # os.listdir gives a directory named with the byte 0xff as a lone surrogate.
    response = list_response("repositories", ["a", b"b\xff".decode(errors="surrogateescape"), "c"], {})
    assert response.body == b'{"repositories":["a","c"]}'
