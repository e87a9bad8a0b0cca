"""The whole storage layout, in one place: registry:2's, so either can serve the other's data.

::

    /docker/registry/v2/
        blobs/<alg>/<hex[:2]>/<hex>/data                         content, shared by every repository
        blobs/<alg>/<hex[:2]>/<hex>/.data.<32 hex>.tmp           a write of data killed before its rename
        repositories/<name>/
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
        pushing/<32 hex>                                         a manifest push in progress: "<name>\n<alg>:<hex>"
        quarantine/<alg>/<hex>                                   corrupt blob data that scrub --repair moved away

A link file holds ``<alg>:<hex>`` with no newline. Every argument here has been
validated by :mod:`dockyard.reference` before a path is built from it.
"""

from __future__ import annotations

from dockyard.atomic import TEMPORARY_NAME
from dockyard.reference import Digest

ROOT = "/docker/registry/v2"
BLOBS = f"{ROOT}/blobs"
REPOSITORIES = f"{ROOT}/repositories"
MAINTENANCE = f"{ROOT}/dockyard"
GC_LOCK = f"{MAINTENANCE}/gc/lock"
CONDEMNED_BLOBS = f"{MAINTENANCE}/gc/condemned/blobs"
CONDEMNED_MANIFESTS = f"{MAINTENANCE}/gc/condemned/manifests"
QUARANTINE = f"{MAINTENANCE}/quarantine"
PUSH_INTENTS = f"{MAINTENANCE}/pushing"


def blob_dir(digest: Digest) -> str:
    return f"{BLOBS}/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}"


def blob_data(digest: Digest) -> str:
    return f"{blob_dir(digest)}/data"


def blob_entry(digest: Digest, name: str) -> str:
    """A file listed in the blob's folder (its data, or a temporary one)."""
    return f"{blob_dir(digest)}/{name}"


def is_temporary(name: str) -> bool:
    """Whether a file name is a write's temporary one (:func:`dockyard.atomic.write_file`)."""
    return TEMPORARY_NAME.fullmatch(name) is not None


def repository(name: str) -> str:
    return f"{REPOSITORIES}/{name}"


def layer_link(name: str, digest: Digest) -> str:
    return f"{layers(name)}/{digest.algorithm}/{digest.hex}/link"


def layers(name: str) -> str:
    return f"{repository(name)}/_layers"


def manifests(name: str) -> str:
    return f"{repository(name)}/_manifests"


def revisions(name: str, algorithm: str) -> str:
    return f"{manifests(name)}/revisions/{algorithm}"


def revision_link(name: str, digest: Digest) -> str:
    return f"{revisions(name, digest.algorithm)}/{digest.hex}/link"


def tags(name: str) -> str:
    return f"{manifests(name)}/tags"


def tag(name: str, tag_name: str) -> str:
    return f"{tags(name)}/{tag_name}"


def tag_current_link(name: str, tag_name: str) -> str:
    return f"{tag(name, tag_name)}/current/link"


def tag_index(name: str, tag_name: str, algorithm: str) -> str:
    return f"{tag(name, tag_name)}/index/{algorithm}"


def tag_index_link(name: str, tag_name: str, digest: Digest) -> str:
    return f"{tag_index(name, tag_name, digest.algorithm)}/{digest.hex}/link"


def referrers(name: str, subject: Digest) -> str:
    return f"{manifests(name)}/referrers/{subject.algorithm}/{subject.hex}"


def referrer_link(name: str, subject: Digest, referrer: Digest) -> str:
    return f"{referrers(name, subject)}/{referrer.algorithm}/{referrer.hex}/link"


def uploads(name: str) -> str:
    return f"{repository(name)}/_uploads"


def upload(name: str, upload_id: str) -> str:
    return f"{uploads(name)}/{upload_id}"


def upload_data(name: str, upload_id: str) -> str:
    return f"{upload(name, upload_id)}/data"


def upload_started_at(name: str, upload_id: str) -> str:
    return f"{upload(name, upload_id)}/startedat"


def condemned_blob(digest: Digest) -> str:
    return f"{CONDEMNED_BLOBS}/{digest.algorithm}/{digest.hex}"


def condemned_revision(name: str, digest: Digest) -> str:
    return f"{CONDEMNED_MANIFESTS}/{name}/{digest.algorithm}/{digest.hex}/link"


def push_intent(intent_id: str) -> str:
    return f"{PUSH_INTENTS}/{intent_id}"


def quarantined_blob(digest: Digest) -> str:
    return f"{QUARANTINE}/{digest.algorithm}/{digest.hex}"
