"""The layout module against the tree its docstring documents, and the rest of the
sources against building or splitting layout strings themselves."""

from __future__ import annotations

import ast
import inspect
import pathlib
import re
from collections.abc import Callable

import pytest

from dockyard.reference import Digest
from dockyard.storage import paths

SOURCES = pathlib.Path(paths.__file__).parents[1]
# Drivers map a storage path to a key or a file, knowing nothing of the layout.
DRIVERS = {"storage/paths.py", "storage/driver.py", "storage/filesystem.py", "storage/inmemory.py", "storage/s3.py"}

# Folder and file names of the layout that no other string has ("referrers", "tags", "blobs",
# "data" are also the API's or the settings').
REPOSITORY_FOLDERS = {"_layers", "_manifests", "_uploads"}
LAYOUT_SEGMENTS = REPOSITORY_FOLDERS | {"link", "startedat", "revisions", "current", "condemned", "pushing", "quarantine", "schedule"}

DIGEST = Digest("sha256", "ab" + "0" * 62)
SUBJECT = Digest("sha256", "cd" + "1" * 62)
TEMPORARY = f".data.{'e' * 32}.tmp"
# What each placeholder of the tree stands for, and each builder parameter is given.
PLACEHOLDERS = {
    "<alg>": DIGEST.algorithm, "<hex[:2]>": DIGEST.hex[:2], "<hex>": DIGEST.hex, "<subject hex>": SUBJECT.hex,
    "<name>": "library/app", "<tag>": "v1.0", "<id>": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
    "<32 hex>": "e" * 32, "<job>": "gc", "<robot>": "ci-builder", "<endpoint>": "hooks-0a1b2c3d4e5f",
    "<event>": "01796614806661828883-0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
}
ARGUMENTS: dict[str, object] = {
    "digest": DIGEST, "referrer": DIGEST, "subject": SUBJECT, "algorithm": DIGEST.algorithm, "shard": DIGEST.hex[:2],
    "name": PLACEHOLDERS["<name>"], "tag_name": PLACEHOLDERS["<tag>"], "upload_id": PLACEHOLDERS["<id>"],
    "intent_id": PLACEHOLDERS["<32 hex>"], "download_id": PLACEHOLDERS["<32 hex>"], "quota_id": PLACEHOLDERS["<32 hex>"],
    "job": PLACEHOLDERS["<job>"], "entry": TEMPORARY, "robot": PLACEHOLDERS["<robot>"],
    "folder": paths.layers(PLACEHOLDERS["<name>"]),
    "endpoint": PLACEHOLDERS["<endpoint>"], "event": PLACEHOLDERS["<event>"],
}


def _documented_tree() -> set[str]:
    """Every path of the docstring's tree (each line's folders too), placeholders filled in."""
    documented: set[str] = set()
    parents: list[tuple[int, str]] = []  # (indentation, path) of the open folders
    block = (paths.__doc__ or "").split("::", 1)[1].split("\n\n")[1]
    for line in block.splitlines():
        indentation = len(line) - len(line.lstrip())
        entry = re.split(r" {2,}", line.strip())[0]
        if "/" not in entry:
            continue  # a description continued on its own line
        while parents and parents[-1][0] >= indentation:
            parents.pop()
        path = entry if entry.startswith("/") else f"{parents[-1][1]}/{entry}"
        for placeholder, value in PLACEHOLDERS.items():
            path = path.replace(placeholder, value)
        path = path.rstrip("/")
        if entry.endswith("/"):
            parents.append((indentation, path))
        parts = path.split("/")
        documented.update("/".join(parts[:end]) for end in range(2, len(parts) + 1))
    return documented


def _builders() -> dict[str, Callable[..., str]]:
    return {
        name: function for name, function in inspect.getmembers(paths, inspect.isfunction)
        if not name.startswith(("_", "is_", "parse_")) and function.__module__ == paths.__name__
    }


def _built(function: Callable[..., str]) -> str:
    """What a builder answers for the sample arguments, each chosen by its parameter's name."""
    return function(*(ARGUMENTS[parameter] for parameter in inspect.signature(function).parameters))


def test_the_tree_is_read_whole() -> None:
    documented = _documented_tree()
    # A line of each part: blobs, a repository's, Dockyard's own.
    assert f"{paths.ROOT}/blobs/sha256/ab/{DIGEST.hex}/{TEMPORARY}" in documented
    assert f"{paths.ROOT}/repositories/library/app/_manifests/referrers/sha256/{SUBJECT.hex}/sha256/{DIGEST.hex}/link" in documented
    assert f"{paths.ROOT}/dockyard/schedule/gc" in documented


@pytest.mark.parametrize("name", sorted(_builders()))
def test_each_builder_names_a_documented_path(name: str) -> None:
    assert _built(_builders()[name]) in _documented_tree()


def _constants() -> dict[str, str]:
    return {
        name: value for name, value in vars(paths).items()
        if name.isupper() and isinstance(value, str) and name != "RESERVED_PREFIX"
    }


def test_each_constant_names_a_documented_path() -> None:
    assert "GC_LOCK" in _constants()
    assert {name: value for name, value in _constants().items() if value not in _documented_tree()} == {}


def test_every_documented_file_has_a_builder() -> None:
    """Each leaf of the tree (a file, not a folder) is what some builder answers."""
    documented = _documented_tree()
    leaves = {path for path in documented if not any(other.startswith(f"{path}/") for other in documented)}
    built = set(_constants().values()) | {_built(function) for function in _builders().values()}
    assert leaves - built == set()


def test_links_are_removed_with_their_folder() -> None:
    """Each link's folder is built on its own: deleting it is how a link goes."""
    pairs = [
        (paths.layer_link, paths.layer_dir), (paths.revision_link, paths.revision_dir),
        (paths.condemned_revision_link, paths.condemned_revision_dir),
    ]
    for link, folder in pairs:
        assert link("library/app", DIGEST) == f"{folder('library/app', DIGEST)}/link"
    assert paths.tag_index_link("app", "v1", DIGEST) == f"{paths.tag_index_dir('app', 'v1', DIGEST)}/link"
    assert paths.referrer_link("app", SUBJECT, DIGEST) == f"{paths.referrer_dir('app', SUBJECT, DIGEST)}/link"


@pytest.mark.parametrize(("entry", "temporary"), [(TEMPORARY, True), ("data", False), (".data", False), (".data.tmp", False)])
def test_is_temporary_knows_a_write_s_leftover(entry: str, temporary: bool) -> None:
    """The parse of a blob folder's entries, and its round trip through the builder."""
    assert paths.is_temporary(entry) is temporary
    assert paths.blob_entry(DIGEST, entry).rpartition("/")[2] == entry


def test_digest_folders_round_trip() -> None:
    """A blob's or link's ``<alg>/<hex>`` folders, as listings give them, back to the digest."""
    *_, algorithm, encoded, _ = paths.revision_link(PLACEHOLDERS["<name>"], DIGEST).split("/")
    assert paths.parse_digest_folders(algorithm, encoded) == DIGEST
    assert paths.parse_digest_folders(DIGEST.algorithm, "not-hex") is None
    assert paths.parse_digest_folders("md5", DIGEST.hex) is None


def test_repository_folders_are_reserved() -> None:
    folders = {paths.layers("app"), paths.manifests("app"), paths.uploads("app")}
    assert {folder.rpartition("/")[2] for folder in folders} == REPOSITORY_FOLDERS
    assert all(folder.startswith(paths.RESERVED_PREFIX) for folder in REPOSITORY_FOLDERS)


def _string_pieces(tree: ast.AST) -> list[tuple[int, str]]:
    """The string literals of code (f-strings' pieces too), docstrings left out."""
    documentation = {
        id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    return [
        (node.lineno, node.value) for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in documentation
    ]


def _is_layout_piece(text: str) -> bool:
    """Whether a literal builds or splits a layout path: a layout name joined to a ``/``, or
    one of a repository's own folders named alone."""
    if any(character.isspace() for character in text):
        return False  # prose: help texts, messages
    segments = text.split("/")
    if len(segments) == 1:
        return text in REPOSITORY_FOLDERS
    return "docker/registry" in text or any(segment in LAYOUT_SEGMENTS for segment in segments)


def test_no_module_builds_or_splits_layout_paths() -> None:
    found = []
    for source in sorted(SOURCES.rglob("*.py")):
        relative = source.relative_to(SOURCES).as_posix()
        if relative in DRIVERS:
            continue
        for line, text in _string_pieces(ast.parse(source.read_text(), relative)):
            if _is_layout_piece(text):
                found.append(f"{relative}:{line} {text!r}")
    assert found == []


def test_blob_paths_parse_back_to_their_blob() -> None:
    assert paths.parse_blob_folder(paths.blob_dir(DIGEST)) == DIGEST
    assert paths.parse_blob_data(paths.blob_data(DIGEST)) == DIGEST
    assert paths.parse_blob_entry(paths.blob_entry(DIGEST, ".data.x.tmp")) == (DIGEST, ".data.x.tmp")
    assert paths.parse_blob_data(paths.blob_entry(DIGEST, "other")) is None
    misplaced = f"{paths.BLOBS}/sha256/zz/{DIGEST.hex}"
    for path in [misplaced, f"{misplaced}/data", paths.BLOBS, paths.blob_shard("sha256", "ab"), f"{paths.blob_dir(DIGEST)}/a/b"]:
        assert paths.parse_blob_folder(path) is None and paths.parse_blob_data(path) is None
