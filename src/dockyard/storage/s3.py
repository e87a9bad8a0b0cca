"""The S3 driver: registry:2's layout in a bucket, through aiobotocore (and its folder
listings and small reads through :mod:`dockyard.storage.s3_lean` where the settings allow).

Keys are registry:2's (``<rootdirectory>/docker/registry/v2/...``), so registry:2 and
Dockyard can serve one bucket.

Appendable files (uploads in progress) are kept in S3 itself, so that any process can
continue them. Such a file is a *marker* object at its own key, whose metadata holds
its size and whose body lists its *segments*: objects under the hidden sibling prefix
``.<name>.segments/``, one per writer, in order. A writer gathers what it receives into
parts of ``chunksize`` (one multipart upload per segment, at most one part in flight),
and on ``close`` finishes its segment and replaces the marker, which is atomic: a reader
sees the file before or after the writer, never torn. Every segment but the last is at
least 5 MiB (S3's smallest part): a writer that finds a smaller last segment reads it
(under 5 MiB) and writes it again at the head of its own. So ``move`` of an upload into
the blob store is one multipart upload at the destination whose parts are server-side
copies of the segments (``UploadPartCopy``): the bytes never pass through the registry.
A crashed writer leaves only an unlisted segment or an unfinished multipart upload under
the sibling prefix, removed with the file.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import itertools
import json
import math
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, NamedTuple

import aiobotocore.session
import botocore.config
import botocore.exceptions

from dockyard.concurrency import gather_bounded
from dockyard.config import S3 as S3Settings
from dockyard.storage.driver import FileInfo, FileWriter, Move, PathNotFound, StorageDriver
from dockyard.storage.s3_lean import MISSING, LeanClient
from dockyard.storage.s3_writer import MARKER, SEGMENTS_SUFFIX, S3Writer, Segment, segments_prefix

MIN_PART = 5 << 20  # S3's smallest part, but for the last
MAX_PARTS = 10_000
READ_CHUNK = 1 << 20
DELETE_BATCH = 1000  # DeleteObjects' limit
LIST_PAGE_MAX = 1000  # ListObjectsV2's most keys a request
LISTING_CONCURRENCY = 64  # listings in flight: a catalog page lists a thousand folders, each a small request
MOVES_AT_ONCE = 32  # move_files' copies in flight
REDIRECT_EXPIRY = 20 * 60  # seconds, as registry:2's s3 driver
LOCK_SUFFIX = ".lock"
LOCK_LEASE = 30.0  # seconds a lock holds unrenewed: then a crashed holder's lock is taken over
LOCK_POLL_SECONDS = (0.005, 0.1)
_NOT_FOUND = {"NoSuchKey", "NotFound", "404"}
_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"}


class _Stored(NamedTuple):
    """A file as the objects that hold it."""

    segments: builtins.list[Segment]
    is_marker: bool
    """``segments`` are an appendable file's, listed by a marker object at the file's key"""
    mtime: float

    def keys(self, key: str) -> builtins.list[str]:
        """Every object of the file at ``key``: what deleting it deletes."""
        return [key, *(segment.key for segment in self.segments if self.is_marker)]


class S3Error(Exception):
    """S3 failed or refused a request; the message says what and where, in one line."""


class PreconditionFailed(S3Error):
    """A conditional write (If-None-Match, If-Match) found the object otherwise."""


class ConditionalConflict(S3Error):
    """A conditional write met another one to the same key in flight (AWS's 409): to retry."""


def _lock_key(key: str) -> str:
    head, _, name = key.rpartition("/")
    return f"{head}/.{name}{LOCK_SUFFIX}" if head else f".{name}{LOCK_SUFFIX}"


def _hidden(name: str) -> bool:
    return name.startswith(".") and name.endswith((SEGMENTS_SUFFIX, LOCK_SUFFIX))


def _copy_ranges(size: int, chunk: int) -> list[tuple[int, int]]:
    """``[start, end)`` ranges of at most ``chunk`` bytes, none but the last under MIN_PART."""
    ranges = [(start, min(start + chunk, size)) for start in range(0, size, chunk)]
    if len(ranges) > 1 and ranges[-1][1] - ranges[-1][0] < MIN_PART:
        ranges[-2:] = [(ranges[-2][0], size)]
    return ranges


@functools.cache
def _session() -> Any:
    """One botocore session per process: it loads the service models once (0.1-0.4 s)."""
    return aiobotocore.session.get_session()


def _endpoint(settings: S3Settings) -> str | None:
    endpoint = settings.regionendpoint
    if endpoint and "://" not in endpoint:
        endpoint = f"{'https' if settings.secure else 'http'}://{endpoint}"
    return endpoint or None


def location(settings: S3Settings) -> str:
    """Where the driver keeps its data, for messages: ``s3://bucket/root at endpoint``."""
    root = settings.rootdirectory.strip("/")
    return f"s3://{settings.bucket}{'/' + root if root else ''} at {_endpoint(settings) or 'AWS'}"


class S3Driver(StorageDriver):
    name = "s3"
    locks_across_machines = True  # lock objects written with conditional PUTs
    lists_trees_at_once = True

    def __init__(self, settings: S3Settings, redirect: bool = True) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self.redirect = redirect
        self.endpoint = _endpoint(settings)
        self._root = settings.rootdirectory.rstrip("/")
        self._part_size = settings.chunksize
        self._copy_limit = asyncio.Semaphore(settings.multipartcopymaxconcurrency)
        self._object_params: dict[str, str] = {}
        if settings.storageclass != "NONE":
            self._object_params["StorageClass"] = settings.storageclass
        if settings.encrypt:
            self._object_params["ServerSideEncryption"] = "aws:kms" if settings.keyid else "AES256"
            if settings.keyid:
                self._object_params["SSEKMSKeyId"] = settings.keyid
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None
        self._client_lock = asyncio.Lock()
        self._lean = LeanClient.applies(self.endpoint, settings)

    @property
    def where(self) -> str:
        return location(self.settings)

    # -- the client ----------------------------------------------------------------

    async def _s3(self) -> Any:
        if self._client is None:
            async with self._client_lock:
                if self._client is None:
                    self._client = await self._stack.enter_async_context(self._create_client())
        return self._client

    def _create_client(self) -> Any:
        settings = self.settings
        config = botocore.config.Config(
            # registry:2 (2.8) addresses by path whenever an endpoint is given.
            s3={"addressing_style": "path" if settings.forcepathstyle or settings.regionendpoint else "auto"},
            signature_version="s3v4" if settings.v4auth else "s3",  # presigned URLs too
            max_pool_connections=max(64, settings.multipartcopymaxconcurrency),
            connect_timeout=5,
            read_timeout=60,
            retries={"max_attempts": 3, "mode": "standard"},
            # Content is verified by its digest: S3's own checksums would only cost CPU.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        return _session().create_client(
            "s3",
            region_name=settings.region,
            endpoint_url=self.endpoint,
            use_ssl=settings.secure,
            # No TLS to verify on a plain-HTTP endpoint: skip loading the CA bundle (~0.1 s).
            verify=False if settings.skipverify or (self.endpoint or "").startswith("http://") else None,
            # Empty keys: the standard chain (AWS_* variables, shared files, instance roles).
            aws_access_key_id=settings.accesskey or None,
            aws_secret_access_key=settings.secretkey or None,
            config=config,
        )

    @contextlib.contextmanager
    def _errors(self, path: str | None = None) -> Iterator[None]:
        """S3's errors as PathNotFound (for ``path``) or one-line S3Errors."""
        try:
            yield
        except botocore.exceptions.ClientError as error:
            details = error.response.get("Error", {})
            code, message = str(details.get("Code", "")), details.get("Message") or ""
            if code in _NOT_FOUND and path is not None:
                raise PathNotFound(path) from None
            operation = error.operation_name
            if code == "NoSuchBucket" or (code in _NOT_FOUND and operation == "HeadBucket"):
                raise S3Error(f"S3 bucket {self.bucket!r} does not exist ({self.where})") from None
            if code in ("PreconditionFailed", "412"):
                raise PreconditionFailed(f"S3 {operation} in {self.where}: the object changed meanwhile") from None
            if code == "ConditionalRequestConflict":
                raise ConditionalConflict(f"S3 {operation} in {self.where}: another conditional write of the object is in flight") from None
            if code in _DENIED:
                raise S3Error(f"S3 refused {operation} in {self.where}: {code} {message}".rstrip()) from None
            raise S3Error(f"S3 {operation} failed in {self.where}: {code} {message}".rstrip()) from None
        except botocore.exceptions.NoCredentialsError:
            raise S3Error("no S3 credentials: set storage.s3.accesskey and secretkey, or AWS's variables or files") from None
        except botocore.exceptions.BotoCoreError as error:
            raise S3Error(f"cannot reach S3 ({self.where}): {error}") from None

    async def _call(self, operation: str, path: str | None = None, **params: Any) -> dict[str, Any]:
        client = await self._s3()
        with self._errors(path):
            response: dict[str, Any] = await getattr(client, operation)(Bucket=self.bucket, **params)
            return response

    async def _list(self, **params: Any) -> dict[str, Any]:
        """One ListObjectsV2 page: through the lean client where it applies, else (or when it
        got no answer) botocore."""
        if self._lean is not None and (found := await self._lean.list(params)) is not None:
            return found
        return await self._call("list_objects_v2", **params)

    async def _put_lock(self, path: str | None, **params: Any) -> str:
        """A lock object's put_object; its new ETag."""
        etag: str = (await self._call("put_object", path, **params))["ETag"]
        return etag

    async def check(self) -> None:
        """Raise S3Error unless the bucket answers (for a clear error at start)."""
        await self._call("head_bucket")

    # -- keys ----------------------------------------------------------------------

    def _key(self, path: str) -> str:
        if not path.startswith("/") or "/../" in f"{path}/" or "\0" in path:
            raise ValueError(f"invalid storage path {path!r}")
        # registry:2's s3Path: rootdirectory (no trailing /) + path, leading / removed.
        return (self._root + path).lstrip("/").rstrip("/")

    @staticmethod
    def _directory(key: str) -> str:
        return f"{key}/" if key else ""

    async def _pages(self, prefix: str, delimiter: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """Every ListObjectsV2 page below ``prefix``: each key with its size and time."""
        params: dict[str, Any] = {"Prefix": prefix, "MaxKeys": LIST_PAGE_MAX}
        if delimiter is not None:
            params["Delimiter"] = delimiter
        while True:
            page = await self._list(**params)
            yield page
            if not page.get("IsTruncated"):
                return
            params["ContinuationToken"] = page["NextContinuationToken"]

    async def _keys_under(self, prefix: str) -> builtins.list[str]:
        return [item["Key"] async for page in self._pages(prefix) for item in page.get("Contents", ())]

    async def _head(self, key: str) -> dict[str, Any] | None:
        if not key:
            return None
        if self._lean is not None and (found := await self._lean.head(key)) is not None:
            return None if found is MISSING else found
        try:
            return await self._call("head_object", key, Key=key)
        except PathNotFound:
            return None

    async def _is_directory(self, key: str) -> bool:
        # SeaweedFS lists an emptied directory as an object named ``dir/``: not a child.
        prefix = self._directory(key)
        found = await self._list(Prefix=prefix, Delimiter="/", MaxKeys=2)
        children = [item["Key"] for item in found.get("Contents", ())] + [item["Prefix"] for item in found.get("CommonPrefixes", ())]
        return any(child != prefix for child in children)

    # -- appendable files ------------------------------------------------------------

    async def _segments(self, key: str, path: str) -> _Stored | None:
        """The file at ``key`` as segments; None if absent."""
        head = await self._head(key)
        if head is None:
            return None
        mtime = head["LastModified"].timestamp()
        if MARKER not in head.get("Metadata", {}):
            return _Stored([Segment(key, head["ContentLength"])], False, mtime)
        response = await self._call("get_object", path, Key=key)
        async with response["Body"] as body:
            listed = json.loads(await body.read())["segments"]
        prefix = segments_prefix(key)
        return _Stored([Segment(prefix + item["name"], item["size"]) for item in listed], True, mtime)

    async def _put_marker(self, key: str, segments: Sequence[Segment]) -> None:
        prefix = segments_prefix(key)
        body = json.dumps({"segments": [{"name": s.key.removeprefix(prefix), "size": s.size} for s in segments]})
        size = sum(segment.size for segment in segments)
        await self._call(
            "put_object", Key=key, Body=body.encode(), Metadata={MARKER: str(size)},
            ContentType="application/json", **self._object_params,
        )

    async def _copy(self, segments: Sequence[Segment], destination: str) -> None:
        """Put the concatenation of ``segments`` at ``destination``, server-side."""
        total = sum(segment.size for segment in segments)
        if total == 0:
            await self._call("put_object", Key=destination, Body=b"", **self._object_params)
            return
        if len(segments) == 1 and total <= self.settings.multipartcopythresholdsize:
            await self._call(
                "copy_object", Key=destination, CopySource={"Bucket": self.bucket, "Key": segments[0].key},
                **self._object_params,
            )
            return
        parts: list[tuple[Segment, int, int]] = []
        for segment in segments:
            chunk = max(self.settings.multipartcopychunksize, math.ceil(segment.size / MAX_PARTS))
            parts += [(segment, start, end) for start, end in _copy_ranges(segment.size, chunk)]
        upload = await self._call("create_multipart_upload", Key=destination, **self._object_params)
        upload_id = upload["UploadId"]

        async def copy_part(number: int, segment: Segment, start: int, end: int) -> dict[str, Any]:
            async with self._copy_limit:
                copied = await self._call(
                    "upload_part_copy", Key=destination, UploadId=upload_id, PartNumber=number,
                    CopySource={"Bucket": self.bucket, "Key": segment.key}, CopySourceRange=f"bytes={start}-{end - 1}",
                )
            return {"PartNumber": number, "ETag": copied["CopyPartResult"]["ETag"]}

        try:
            done = await asyncio.gather(*(copy_part(number, *part) for number, part in enumerate(parts, 1)))
            await self._call(
                "complete_multipart_upload", Key=destination, UploadId=upload_id, MultipartUpload={"Parts": list(done)},
            )
        except BaseException:
            await self._abort(destination, upload_id)
            raise

    async def _abort(self, key: str, upload_id: str) -> None:
        with contextlib.suppress(S3Error, PathNotFound):
            await self._call("abort_multipart_upload", Key=key, UploadId=upload_id)

    async def _abort_all(self, prefix: str) -> None:
        """Abort the unfinished multipart uploads of crashed writers under ``prefix``."""
        client = await self._s3()
        paginator = client.get_paginator("list_multipart_uploads")
        with self._errors():
            uploads = [
                (upload["Key"], upload["UploadId"])
                async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix)
                for upload in page.get("Uploads", ())
            ]
        await asyncio.gather(*(self._abort(key, upload_id) for key, upload_id in uploads))

    async def _delete_keys(self, keys: Sequence[str]) -> None:
        async def batch(chunk: Sequence[str]) -> None:
            result = await self._call("delete_objects", Delete={"Objects": [{"Key": key} for key in chunk], "Quiet": True})
            failed = [error for error in result.get("Errors", ()) if error.get("Code") not in _NOT_FOUND]
            if failed:
                raise S3Error(f"S3 could not delete {failed[0].get('Key')}: {failed[0].get('Code')} {failed[0].get('Message', '')}")

        await asyncio.gather(*(batch(keys[start:start + DELETE_BATCH]) for start in range(0, len(keys), DELETE_BATCH)))

    async def _remove(self, key: str, keys: Sequence[str]) -> None:
        """Delete ``keys`` (``key`` and what belongs to it), then the directories left empty.

        SeaweedFS (a filesystem underneath) keeps a directory when its last object goes,
        and lists it as a common prefix until the directory itself (``dir/``) is deleted,
        which it does only when empty. Deleting them deepest first, and then ``key``'s
        ancestors while they are empty, keeps listings as S3's; on S3 itself these are
        deletes of keys that do not exist.
        """
        await self._delete_keys(keys)
        parent = key.rpartition("/")[0]
        await self._delete_folders(keys, parent)
        root = self._root.lstrip("/")
        while parent and parent != root and not await self._is_directory(parent):
            await self._call("delete_object", Key=f"{parent}/")
            parent = parent.rpartition("/")[0]

    async def _delete_folders(self, keys: Sequence[str], down_to: str) -> None:
        """Delete SeaweedFS's folders (``dir/``) of ``keys`` below ``down_to``, deepest first, each
        depth in one request: it deletes only those that are empty (see :meth:`_remove`)."""
        below: dict[int, set[str]] = {}
        for item in keys:
            directory = item.rpartition("/")[0]
            while len(directory) > len(down_to):
                below.setdefault(directory.count("/"), set()).add(f"{directory}/")
                directory = directory.rpartition("/")[0]
        for depth in sorted(below, reverse=True):
            await self._delete_keys(sorted(below[depth]))

    # -- the interface ----------------------------------------------------------------

    async def get_content(self, path: str) -> bytes:
        key = self._key(path)
        if not key:
            raise PathNotFound(path)
        if self._lean is not None and (found := await self._lean.get(key)) is not None:
            if found is MISSING:
                raise PathNotFound(path)
            return found
        response = await self._call("get_object", path, Key=key)
        async with response["Body"] as body:
            content: bytes = await body.read()
        if MARKER in response.get("Metadata", {}):
            return b"".join([chunk async for chunk in self.read(path)])
        return content

    async def put_content(self, path: str, content: bytes) -> None:
        await self._call("put_object", Key=self._key(path), Body=content, **self._object_params)

    async def create(self, path: str, content: bytes) -> bool:
        delay = LOCK_POLL_SECONDS[0]
        while True:
            try:
                await self._call("put_object", Key=self._key(path), Body=content, IfNoneMatch="*", **self._object_params)
            except PreconditionFailed:
                return False
            except ConditionalConflict:  # the write in flight decides: look again once it has
                await asyncio.sleep(delay)
                delay = min(delay * 2, LOCK_POLL_SECONDS[1])
                continue
            return True

    async def read(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        found = await self._segments(self._key(path), path)
        if found is None:
            raise PathNotFound(path)
        segments = found.segments
        end = sum(segment.size for segment in segments)
        if length is not None:
            end = min(end, offset + length)
        start_of_segment = 0
        for segment in segments:
            first, last = max(offset, start_of_segment), min(end, start_of_segment + segment.size)
            if first < last:
                async for chunk in self._stream(segment.key, path, first - start_of_segment, last - start_of_segment):
                    yield chunk
            start_of_segment += segment.size

    async def _stream(self, key: str, path: str, first: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Bytes ``[first, end)`` of the object at ``key`` (``path`` names it in errors)."""
        ranged = {} if first == 0 and end is None else {"Range": f"bytes={first}-{'' if end is None else end - 1}"}
        response = await self._call("get_object", path, Key=key, **ranged)
        async with response["Body"] as body:
            with self._errors(path):
                async for chunk in body.iter_chunks(READ_CHUNK):
                    yield chunk

    async def writer(self, path: str, append: bool = False, commit_awaited: bool = True) -> FileWriter:
        key = self._key(path)
        found = await self._segments(key, path) if append else None
        kept: list[Segment] = []
        superseded: list[str] = []
        tail = b""
        if found is not None:
            segments, is_marker = found.segments, found.is_marker
            if not is_marker and segments[0].size >= MIN_PART:
                # A plain object becomes the first segment of an appendable file.
                copy = Segment(f"{segments_prefix(key)}{0:020d}-{uuid.uuid4().hex}", segments[0].size)
                await self._copy(segments, copy.key)
                segments = [copy]
            elif not is_marker:
                tail = await self.get_content(path)
                segments = []
            if segments and segments[-1].size < MIN_PART:
                last = segments.pop()
                tail = b"".join([chunk async for chunk in self._stream(last.key, path)])
                superseded.append(last.key)
            kept = segments
        elif not append:
            superseded = await self._keys_under(segments_prefix(key))
        return S3Writer(self, path, key, kept, tail, superseded, exists=found is not None)

    async def stat(self, path: str) -> FileInfo:
        key = self._key(path)
        head = await self._head(key)
        if head is not None:
            marked = head.get("Metadata", {}).get(MARKER)
            size = int(marked) if marked is not None else head["ContentLength"]
            return FileInfo(path, size, head["LastModified"].timestamp(), False)
        if await self._is_directory(key):
            return FileInfo(path, 0, time.time(), True)
        raise PathNotFound(path)

    async def list(self, path: str) -> builtins.list[str]:
        prefix = self._directory(self._key(path))
        names: set[str] = set()
        async for page in self._pages(prefix, "/"):
            names.update(item["Prefix"][len(prefix):].rstrip("/") for item in page.get("CommonPrefixes", ()))
            names.update(item["Key"][len(prefix):] for item in page.get("Contents", ()))
        names = {name for name in names if name and not _hidden(name)}
        if not names:
            raise PathNotFound(path)
        return list(names)

    async def list_page(self, path: str, after: str = "", limit: int | None = None) -> builtins.list[str]:
        # S3 lists in key order, where a folder ``name`` is ``name/``: a name followed by a
        # character below ``/`` comes before a name it extends (``1.0-rc/`` < ``1.0/``), but
        # every name after ``after`` has a key after ``<prefix><after>``. So the listing
        # starts there, drops the few names at or before ``after`` it meets, and stops once
        # it holds ``limit`` names; then only a name that a listed one extends past such a
        # character can still be missing, and each of those is looked up.
        if limit is not None and limit <= 0:
            return []
        prefix = self._directory(self._key(path))
        params: dict[str, Any] = {"Prefix": prefix, "Delimiter": "/", **({"StartAfter": prefix + after} if after else {})}
        names: set[str] = set()
        end = ""  # the greatest key listed
        while True:
            # A server answers at most its own maximum (AWS's is LIST_PAGE_MAX) however many are
            # asked; SeaweedFS answers them all: a page of 1000 tags and the one telling whether
            # another page follows, past ``last``, come in one request, not two.
            wanted = LIST_PAGE_MAX if limit is None else limit - len(names) + 1
            found = await self._list(MaxKeys=wanted, **params)
            for entry in itertools.chain(
                (item["Prefix"] for item in found.get("CommonPrefixes", ())), (item["Key"] for item in found.get("Contents", ()))
            ):
                end = max(end, entry)
                name = entry[len(prefix):].rstrip("/")
                # After a StartAfter inside a folder, SeaweedFS rolls keys up below it: no child.
                if name > after and "/" not in name and not _hidden(name):
                    names.add(name)
            if not found.get("IsTruncated"):
                return sorted(names)[:limit]
            if limit is not None and len(names) >= limit:
                break
            params["ContinuationToken"] = found["NextContinuationToken"]
        unreached = sorted({
            shorter
            for name in names
            for at in range(1, len(name))
            if name[at] < "/" and (shorter := name[:at]) > after and f"{prefix}{shorter}/" > end and not _hidden(shorter)
        } - names)
        exists = await asyncio.gather(*(self._is_directory(prefix + name) for name in unreached))
        names.update(name for name, there in zip(unreached, exists, strict=True) if there)
        return sorted(names)[:limit]

    async def list_pages(self, requests: Sequence[tuple[str, str, int | None]]) -> builtins.list[builtins.list[str]]:
        limit = asyncio.Semaphore(LISTING_CONCURRENCY)

        async def listing(path: str, after: str, count: int | None) -> builtins.list[str]:
            async with limit:
                return await self.list_page(path, after, count)

        return list(await asyncio.gather(*(listing(*request) for request in requests)))

    async def list_sorted(self, paths: Sequence[str]) -> dict[str, builtins.list[str]]:
        limit = asyncio.Semaphore(LISTING_CONCURRENCY)

        async def listing(path: str) -> list[str] | None:
            async with limit:
                try:
                    return sorted(await self.list(path))
                except PathNotFound:
                    return None

        listings = await asyncio.gather(*(listing(path) for path in paths))
        return {path: names for path, names in zip(paths, listings, strict=True) if names is not None}

    async def list_files(self, path: str) -> builtins.list[FileInfo]:
        # One flat listing (no delimiter): a thousand keys a request, each with its size and
        # time, instead of a listing per folder and a HEAD per file. S3 keeps no empty folders;
        # SeaweedFS's emptied ones (``dir/``) and the hidden segments and locks are left out.
        # A file with segments beside it may be an appendable one: its size is its marker's.
        prefix = self._directory(self._key(path))
        found: list[FileInfo] = []
        segmented: set[str] = set()
        async for page in self._pages(prefix):
            for item in page.get("Contents", ()):
                parts = item["Key"][len(prefix):].split("/")
                hidden = [index for index, part in enumerate(parts) if _hidden(part)]
                if not hidden and parts[-1]:
                    found.append(FileInfo("/".join([path, *parts]), item["Size"], item["LastModified"].timestamp(), False))
                elif hidden and parts[hidden[0]].endswith(SEGMENTS_SUFFIX):
                    segmented.add("/".join([path, *parts[:hidden[0]], parts[hidden[0]][1:-len(SEGMENTS_SUFFIX)]]))
        appendable = [info.path for info in found if info.path in segmented]
        stats = dict(zip(appendable, await asyncio.gather(*(self._stat_or_none(file) for file in appendable)), strict=True))
        # SeaweedFS lists folder by folder, not in key order.
        return sorted(
            (listed for info in found if (listed := stats[info.path] if info.path in stats else info) is not None),
            key=lambda info: info.path,
        )

    async def move(self, source: str, destination: str) -> None:
        keys = await self._copy_file(Move(source, destination))
        if not keys:
            raise PathNotFound(source)
        await self._remove(keys[0], keys)

    async def move_files(self, moves: Sequence[Move]) -> builtins.list[Move]:
        # Each file copied, then every source deleted in a DeleteObjects a thousand, and the
        # folders they leave empty a request per depth (as delete_files): two requests a file
        # where move takes five or more.
        copied = await gather_bounded(moves, self._copy_file, MOVES_AT_ONCE)
        doomed = [key for keys in copied for key in keys]
        await self._delete_keys(doomed)
        await self._delete_folders(doomed, self._root.lstrip("/"))
        return [move for move, keys in zip(moves, copied, strict=True) if keys]

    async def _copy_file(self, move: Move) -> builtins.list[str]:
        """Copy ``move``'s source to its destination; the source's keys (its own first), none
        when it is gone or was written since ``move.unless_modified_since``."""
        key = self._key(move.source)
        found = await self._segments(key, move.source)
        if found is None or (move.unless_modified_since is not None and found.mtime >= move.unless_modified_since):
            return []
        await self._copy(found.segments, self._key(move.destination))
        return found.keys(key)

    async def delete(self, path: str) -> None:
        key = self._key(path)
        head, tree = await asyncio.gather(self._head(key), self._keys_under(self._directory(key)))
        doomed = list(tree)
        marker = head is not None and MARKER in head.get("Metadata", {})
        if head is not None:
            doomed.append(key)
        if marker:
            doomed += await self._keys_under(segments_prefix(key))
        if not doomed:
            raise PathNotFound(path)
        await self._remove(key, doomed)
        if tree:
            await self._abort_all(self._directory(key))
        if marker:
            await self._abort_all(segments_prefix(key))

    async def delete_files(self, paths: Sequence[str]) -> builtins.list[str]:
        # A thousand keys a DeleteObjects, then the folders they leave empty, a request per depth
        # for all of them (down to the root, where _remove looks at each ancestor in turn).
        keys = [self._key(path) for path in paths]
        await self._delete_keys(keys)
        await self._delete_folders(keys, self._root.lstrip("/"))
        return list(paths)

    @contextlib.asynccontextmanager
    async def lock(self, path: str) -> AsyncIterator[None]:
        """Held across processes and machines: a lock object written only where none is
        (If-None-Match), renewed while held (If-Match), and taken over (If-Match on the
        stale one) once its holder has not renewed it for LOCK_LEASE seconds."""
        await self.stat(path)
        key = _lock_key(self._key(path))
        token = uuid.uuid4().hex
        etag = await self._acquire(key, token)
        renewal = asyncio.ensure_future(self._renew(key, token, etag))
        try:
            yield
        finally:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal
            # With the folders it leaves empty: a lock taken just as its file's tree was deleted
            # (an upload cancelled while a chunk waited for it) would leave SeaweedFS a folder.
            await self._remove(key, [key])

    async def _acquire(self, key: str, token: str) -> str:
        delay = LOCK_POLL_SECONDS[0]
        while True:
            try:
                return await self._put_lock(None, Key=key, Body=token.encode(), IfNoneMatch="*")
            except PreconditionFailed:
                pass
            held = await self._head(key)
            if held is not None and time.time() - held["LastModified"].timestamp() > LOCK_LEASE:
                with contextlib.suppress(PreconditionFailed, PathNotFound):  # another waiter took it first
                    return await self._put_lock(key, Key=key, Body=token.encode(), IfMatch=held["ETag"])
            await asyncio.sleep(delay)
            delay = min(delay * 2, LOCK_POLL_SECONDS[1])

    async def _renew(self, key: str, token: str, etag: str) -> None:
        for renewal in itertools.count(1):
            await asyncio.sleep(LOCK_LEASE / 3)
            try:
                body = f"{token} {renewal}".encode()  # a new ETag each time
                etag = await self._put_lock(key, Key=key, Body=body, IfMatch=etag)
            except (PreconditionFailed, PathNotFound):
                return  # deleted with its file's tree, or taken over after a stall

    async def redirect_url(self, path: str, method: str) -> str | None:
        # registry:2 presigns GET and HEAD, for 20 minutes, unless storage.redirect.disable.
        operation = {"GET": "get_object", "HEAD": "head_object"}.get(method)
        if not self.redirect or operation is None:
            return None
        client = await self._s3()
        with self._errors(path):
            url: str = await client.generate_presigned_url(
                operation, Params={"Bucket": self.bucket, "Key": self._key(path)}, ExpiresIn=REDIRECT_EXPIRY,
            )
        return url

    async def close(self) -> None:
        if self._lean is not None:
            await self._lean.close()
        await self._stack.aclose()
        self._client = None
