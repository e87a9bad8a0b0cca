"""The whole storage layout, in one place: registry:2's, so either can serve the other's data.

Every storage path is built here, directories and stamps included; nothing else joins or
splits layout strings. ``tests/storage/test_paths.py`` holds each function to this tree
(every line's folders are part of it too)::

    /docker/registry/v2/
        blobs/<alg>/<hex[:2]>/<hex>/data                         content, shared by every repository
        blobs/<alg>/<hex[:2]>/<hex>/.data.<32 hex>.tmp           a write of data killed before its rename
        repositories/<name>/                                     a name's components are nested folders
            _layers/<alg>/<hex>/link                             blob pushed to (or mounted in) <name>
            _manifests/revisions/<alg>/<hex>/link                manifest in <name>
            _manifests/tags/<tag>/current/link                   what <tag> points to now
            _manifests/tags/<tag>/index/<alg>/<hex>/link         every manifest <tag> has pointed to
            _manifests/referrers/<alg>/<subject hex>/<alg>/<hex>/link
                                                                 Dockyard's: <hex> has <subject> as subject
            _uploads/<id>/data                                   an upload in progress
            _uploads/<id>/startedat                              when it began (RFC 3339)
    /docker/registry/v2/dockyard/                                Dockyard's maintenance, which registry:2 never reads
        gc/lock                                                  held by the one collector that runs
        gc/condemned/blobs/<alg>/<hex>                           blob data a running collection set aside
        gc/condemned/manifests/<name>/<alg>/<hex>/link           revision link a running collection set aside
        pushing/<32 hex>                                         a manifest push in progress: "<name>\\n<alg>:<hex>"
        quarantine/<alg>/<hex>                                   corrupt blob data that scrub --repair moved away
        quotas/<32 hex>/total                                    a quota rule's count (bytes, blobs) and its reconciles running (JSON)
        quotas/<32 hex>/blobs/<alg>/<hex>                        a blob that rule counts: its size, the repositories linking it (JSON)
        quotas/<32 hex>/lock                                     held while those are read and written
        quotas/<32 hex>/usage                                    the rule's single record of the first quotas: deleted at its count
        schedule/<job>                                           when the server last ran <job> (a Unix time)
        proxy/downloads/<32 hex>                                 a blob the pull-through cache is fetching (not verified yet)
        proxy/fetching/<alg>/<hex>                               locked by the one fetch of that blob, across workers
        proxy/pulled/blobs/<alg>/<hex>                           when the cache last served that blob (a Unix time)
        proxy/pulled/repositories/<name>/_manifests/<alg>/<hex>  when the cache last served that manifest of <name>
        proxy/checked/<name>/_tags/<tag>                         when the upstream last said what <tag> names (a Unix time)
        proxy/sync/<name>/_run                                   when a sync of <name>'s chosen tags last started (a Unix time); locked by the one run
        proxy/sync/<name>/_result                                what that run did, or why it failed (JSON)
        robots/<robot>/record                                    a robot account: its permissions, expiry and secret's hash (JSON)
        robots/<robot>/lastused                                  when a server last let <robot> in (a Unix time)
        events/<endpoint>/pending/<event>                        an event (JSON) waiting for <endpoint>; names sort by time
        events/<endpoint>/lease                                  "<owner> <expiry>": the replica delivering to <endpoint>
        events/<endpoint>/claim                                  locked while the lease is read and written (empty, never rewritten)
        events/<endpoint>/recent                                 its last deliveries and failures (JSON), for the web page

A link file holds ``<alg>:<hex>`` with no newline; removing a link removes its folder, as
registry:2 does. Every argument here has been validated by :mod:`dockyard.reference`
before a path is built from it.
"""

from __future__ import annotations

from dockyard.atomic import TEMPORARY_NAME
from dockyard.errors import DigestInvalid
from dockyard.reference import Digest, parse_digest

ROOT = "/docker/registry/v2"
BLOBS = f"{ROOT}/blobs"
REPOSITORIES = f"{ROOT}/repositories"
MAINTENANCE = f"{ROOT}/dockyard"
GC_LOCK = f"{MAINTENANCE}/gc/lock"
CONDEMNED_BLOBS = f"{MAINTENANCE}/gc/condemned/blobs"
CONDEMNED_MANIFESTS = f"{MAINTENANCE}/gc/condemned/manifests"
QUARANTINE = f"{MAINTENANCE}/quarantine"
PUSH_INTENTS = f"{MAINTENANCE}/pushing"
QUOTAS = f"{MAINTENANCE}/quotas"
SCHEDULE = f"{MAINTENANCE}/schedule"
PROXY = f"{MAINTENANCE}/proxy"
ROBOTS = f"{MAINTENANCE}/robots"
EVENTS = f"{MAINTENANCE}/events"

RESERVED_PREFIX = "_"
"""What a repository's own folders (``_layers``, ``_manifests``, ``_uploads``) begin with:
no name component does, so a folder holding such an entry is a repository's."""


def _link(folder: str) -> str:
    return f"{folder}/link"


def algorithm_folder(folder: str, algorithm: str) -> str:
    """The ``<alg>`` level of a folder of digests (``<folder>/<alg>/<hex>``)."""
    return f"{folder}/{algorithm}"


def _digest_folder(folder: str, digest: Digest) -> str:
    return f"{algorithm_folder(folder, digest.algorithm)}/{digest.hex}"


def blob_shard(algorithm: str, shard: str) -> str:
    """The blobs whose hex begins with ``shard`` (its first two characters)."""
    return f"{algorithm_folder(BLOBS, algorithm)}/{shard}"


def blob_dir(digest: Digest) -> str:
    return f"{blob_shard(digest.algorithm, digest.hex[:2])}/{digest.hex}"


def blob_data(digest: Digest) -> str:
    return f"{blob_dir(digest)}/data"


def blob_entry(digest: Digest, entry: str) -> str:
    """A file listed in the blob's folder (its data, or a temporary one)."""
    return f"{blob_dir(digest)}/{entry}"


def parse_blob_folder(path: str) -> Digest | None:
    """The blob whose folder ``path`` is (``<BLOBS>/<alg>/<xx>/<hex>``); ``None`` for another path."""
    parts = path.removeprefix(f"{BLOBS}/").split("/") if path.startswith(f"{BLOBS}/") else []
    if len(parts) != 3:
        return None
    digest = parse_digest_folders(parts[0], parts[2])
    return digest if digest is not None and path == blob_dir(digest) else None  # in its own shard


def parse_blob_entry(path: str) -> tuple[Digest, str] | None:
    """The blob and the name of a file in its folder (:func:`blob_entry`); ``None`` for another path."""
    folder, _, entry = path.rpartition("/")
    digest = parse_blob_folder(folder)
    return (digest, entry) if digest is not None else None


def parse_blob_data(path: str) -> Digest | None:
    """The blob whose content ``path`` is (:func:`blob_data`); ``None`` for another path."""
    found = parse_blob_entry(path)
    return found[0] if found is not None and path == blob_data(found[0]) else None


def parse_link(folder: str, path: str) -> Digest | None:
    """The digest whose link file ``path`` is in a folder of digests (``<folder>/<alg>/<hex>/link``);
    ``None`` for another path."""
    parts = path.removeprefix(f"{folder}/").split("/") if path.startswith(f"{folder}/") else []
    digest = parse_digest_folders(parts[0], parts[1]) if len(parts) == 3 else None
    return digest if digest is not None and path == _link(_digest_folder(folder, digest)) else None


def is_temporary(entry: str) -> bool:
    """Whether a file name is a write's temporary one (:func:`dockyard.atomic.write_file`)."""
    return TEMPORARY_NAME.fullmatch(entry) is not None


def repository(name: str) -> str:
    return f"{REPOSITORIES}/{name}"


def layers(name: str) -> str:
    return f"{repository(name)}/_layers"


def layer_dir(name: str, digest: Digest) -> str:
    return _digest_folder(layers(name), digest)


def layer_link(name: str, digest: Digest) -> str:
    return _link(layer_dir(name, digest))


def manifests(name: str) -> str:
    return f"{repository(name)}/_manifests"


def revisions(name: str) -> str:
    return f"{manifests(name)}/revisions"


def revision_dir(name: str, digest: Digest) -> str:
    return _digest_folder(revisions(name), digest)


def revision_link(name: str, digest: Digest) -> str:
    return _link(revision_dir(name, digest))


def tags(name: str) -> str:
    return f"{manifests(name)}/tags"


def tag(name: str, tag_name: str) -> str:
    return f"{tags(name)}/{tag_name}"


def tag_current_link(name: str, tag_name: str) -> str:
    return _link(f"{tag(name, tag_name)}/current")


def tag_index(name: str, tag_name: str) -> str:
    return f"{tag(name, tag_name)}/index"


def tag_index_dir(name: str, tag_name: str, digest: Digest) -> str:
    return _digest_folder(tag_index(name, tag_name), digest)


def tag_index_link(name: str, tag_name: str, digest: Digest) -> str:
    return _link(tag_index_dir(name, tag_name, digest))


def parse_tag_index_entry(name: str, path: str) -> tuple[str, Digest] | None:
    """The tag and the digest of a tag history entry, from its link or its folder
    (:func:`tag_index_link`, :func:`tag_index_dir`); ``None`` for another path."""
    parts = path.removeprefix(f"{tags(name)}/").split("/") if path.startswith(f"{tags(name)}/") else []
    parts = parts[:-1] if parts[-1:] == ["link"] else parts
    digest = parse_digest_folders(parts[2], parts[3]) if len(parts) == 4 and parts[1] == "index" else None
    if digest is None or path not in (tag_index_dir(name, parts[0], digest), tag_index_link(name, parts[0], digest)):
        return None
    return parts[0], digest


def subjects(name: str) -> str:
    """The manifests that some manifest of ``name`` names as its subject."""
    return f"{manifests(name)}/referrers"


def referrers(name: str, subject: Digest) -> str:
    return _digest_folder(subjects(name), subject)


def referrer_dir(name: str, subject: Digest, referrer: Digest) -> str:
    return _digest_folder(referrers(name, subject), referrer)


def referrer_link(name: str, subject: Digest, referrer: Digest) -> str:
    return _link(referrer_dir(name, subject, referrer))


def uploads(name: str) -> str:
    return f"{repository(name)}/_uploads"


def upload(name: str, upload_id: str) -> str:
    return f"{uploads(name)}/{upload_id}"


def upload_data(name: str, upload_id: str) -> str:
    return f"{upload(name, upload_id)}/data"


def upload_started_at(name: str, upload_id: str) -> str:
    return f"{upload(name, upload_id)}/startedat"


def condemned_blob(digest: Digest) -> str:
    return _digest_folder(CONDEMNED_BLOBS, digest)


def condemned_manifests(name: str) -> str:
    return f"{CONDEMNED_MANIFESTS}/{name}"


def condemned_revision_dir(name: str, digest: Digest) -> str:
    return _digest_folder(condemned_manifests(name), digest)


def condemned_revision_link(name: str, digest: Digest) -> str:
    return _link(condemned_revision_dir(name, digest))


def push_intent(intent_id: str) -> str:
    return f"{PUSH_INTENTS}/{intent_id}"


def quarantined_blob(digest: Digest) -> str:
    return _digest_folder(QUARANTINE, digest)


def quota_total(quota_id: str) -> str:
    return f"{QUOTAS}/{quota_id}/total"


def quota_blobs(quota_id: str) -> str:
    return f"{QUOTAS}/{quota_id}/blobs"


def quota_blob(quota_id: str, digest: Digest) -> str:
    return _digest_folder(quota_blobs(quota_id), digest)


def quota_record_before_markers(quota_id: str) -> str:
    """Where the first quotas kept a rule's whole count in one record."""
    return f"{QUOTAS}/{quota_id}/usage"


def quota_lock(quota_id: str) -> str:
    return f"{QUOTAS}/{quota_id}/lock"


def schedule_stamp(job: str) -> str:
    return f"{SCHEDULE}/{job}"


PROXY_DOWNLOADS = f"{PROXY}/downloads"
PROXY_FETCH_LOCKS = f"{PROXY}/fetching"


def proxy_download(download_id: str) -> str:
    return f"{PROXY_DOWNLOADS}/{download_id}"


def proxy_fetch_lock(digest: Digest) -> str:
    return _digest_folder(PROXY_FETCH_LOCKS, digest)


def proxy_fetch_locks(algorithm: str) -> str:
    return f"{PROXY_FETCH_LOCKS}/{algorithm}"


def proxy_blob_pulled(digest: Digest) -> str:
    return _digest_folder(f"{PROXY}/pulled/blobs", digest)


def proxy_manifest_pulled(name: str, digest: Digest) -> str:
    return _digest_folder(f"{PROXY}/pulled/repositories/{name}/_manifests", digest)


def proxy_tag_checked(name: str, tag_name: str) -> str:
    return f"{PROXY}/checked/{name}/_tags/{tag_name}"


def proxy_sync_run(name: str) -> str:
    return f"{PROXY}/sync/{name}/_run"


def proxy_sync_result(name: str) -> str:
    return f"{PROXY}/sync/{name}/_result"


def robot(robot: str) -> str:
    """A robot account's folder: its record and when it was last used (removed together)."""
    return f"{ROBOTS}/{robot}"


def robot_record(robot: str) -> str:
    return f"{ROBOTS}/{robot}/record"


def robot_last_used(robot: str) -> str:
    # A file of its own: a server's write racing ``robot remove`` can leave it behind, but never
    # bring back the record (see dockyard.auth.robots).
    return f"{ROBOTS}/{robot}/lastused"


def events_pending(endpoint: str) -> str:
    return f"{EVENTS}/{endpoint}/pending"


def event_pending(endpoint: str, event: str) -> str:
    return f"{events_pending(endpoint)}/{event}"


def events_lease(endpoint: str) -> str:
    return f"{EVENTS}/{endpoint}/lease"


def events_claim(endpoint: str) -> str:
    return f"{EVENTS}/{endpoint}/claim"


def events_recent(endpoint: str) -> str:
    return f"{EVENTS}/{endpoint}/recent"


def parse_digest_folders(algorithm: str, encoded: str) -> Digest | None:
    """The digest an ``<algorithm>/<encoded>`` pair of folders names; ``None`` for a stray name."""
    try:
        return parse_digest(f"{algorithm}:{encoded}")
    except DigestInvalid:
        return None
