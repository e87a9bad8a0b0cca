"""The web page's handlers: each finds who is asking, checks what the API would check, and renders."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import jinja2
from aiohttp import web

from dockyard.api import errors
from dockyard.api.access import AccessController
from dockyard.api.context import ACCESS_KEY
from dockyard.api.forwarding import path_prefix, public_base_url
from dockyard.app_keys import MIRRORS_KEY, REGISTRY_KEY
from dockyard.auth.access import Authenticator, Identity
from dockyard.auth.binding import CredentialBinding
from dockyard.auth.robots import RobotAccounts, is_robot_user, robots_among
from dockyard.concurrency import gather_bounded
from dockyard.config import format_duration
from dockyard.deletes import delete_reference, delete_repository
from dockyard.errors import DirectoryUnavailable, DockyardError, ManifestUnknown, TooManyFailedLogins
from dockyard.events import EVENTS_KEY
from dockyard.logs import USER_KEY, audit
from dockyard.proxy.sync import last_result
from dockyard.reference import check_name, check_tag, is_digest, parse_digest
from dockyard.storage import catalog
from dockyard.storage.registry import Registry
from dockyard.ui import format as formats
from dockyard.ui.browse import Browser, listed_repositories, storage_use
from dockyard.ui.pagination import REPOSITORY_SORT_KEYS, page_of, parse_count, parse_sort
from dockyard.ui.sessions import COOKIE_NAME, Session, SessionSigner

log = logging.getLogger("dockyard.ui")

REPOSITORIES_PER_PAGE = 50
MAX_REPOSITORIES_PER_PAGE = 500
TAGS_PER_PAGE = 100
MAX_TAGS_PER_PAGE = 1000
LARGEST_REPOSITORIES = 10
# Other tags of a manifest named on its page; the rest are counted.
OTHER_TAGS_SHOWN = 20
# Repositories read at once for the lists (each reads its own tags and manifests concurrently too).
OVERVIEW_CONCURRENCY = 4
# What the page may load: only its own files; no inline script, no framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
MEDIA_TYPE_LABELS = {
    "application/vnd.oci.image.index.v1+json": "OCI index",
    "application/vnd.docker.distribution.manifest.list.v2+json": "Docker manifest list",
    "application/vnd.oci.image.manifest.v1+json": "OCI manifest",
    "application/vnd.docker.distribution.manifest.v2+json": "Docker manifest",
}


@dataclass(frozen=True)
class Ui:
    signer: SessionSigner
    browser: Browser
    templates: jinja2.Environment


UI_KEY = web.AppKey("dockyard_ui", Ui)
AnyResponse = TypeVar("AnyResponse", bound=web.StreamResponse)


@dataclass(frozen=True)
class Visitor:
    """Who is asking, from the session cookie, and what the access policy lets them do."""

    session: Session
    identity: Identity
    fresh: bool  # the cookie is new and must be sent

    @property
    def user(self) -> str | None:
        """The signed-in user (``None``: anonymous, or removed from the user file since)."""
        return self.identity.user


class Refused(Exception):
    """Stop and show an error page (or send the visitor to the sign-in form)."""

    def __init__(self, status: int, message: str, repository: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.repository = repository  # the error page links back to it


def _access(request: web.Request) -> AccessController:
    return request.app[ACCESS_KEY]


def _can_sign_in(request: web.Request) -> bool:
    return _access(request).authenticator is not None


def robot_accounts(request: web.Request) -> RobotAccounts | None:
    """The registry's robot accounts, where anyone can sign in at all."""
    authenticator = _access(request).authenticator
    return robots_among(authenticator.sources) if authenticator is not None else None


def manages_robots(request: web.Request, who: Visitor) -> bool:
    """Administrators manage robot accounts (see :mod:`dockyard.ui.robots`)."""
    policy = who.identity.policy
    return robot_accounts(request) is not None and policy is not None and policy.is_admin(who.user)


async def visitor(request: web.Request) -> Visitor:
    ui = request.app[UI_KEY]
    access = _access(request)
    session = ui.signer.decode(request.cookies.get(COOKIE_NAME))
    fresh = session is None
    if session is None:
        session = ui.signer.new(None)
    user, account = session.user, None
    if user is not None:
        # As every API request's check does: one stat of the user file, or a cached directory lookup.
        try:
            account = await _binding(ui, access.authenticator).current(user, session.credential) if access.authenticator else None
        except DirectoryUnavailable:
            log.warning("the directory cannot say whether %r may still be signed in: shown the page as signed out", user)
        if account is None:
            user = None  # removed, or their password changed, since signing in
        else:
            request[USER_KEY] = user  # for the access log
    return Visitor(session, Identity.of(user, access.policy, account), fresh)


def _binding(ui: Ui, authenticator: Authenticator) -> CredentialBinding:
    return CredentialBinding(authenticator.sources, ui.signer.binding_key)


def _path(path: str, **query: str | int | None) -> str:
    """A path on this site without the prefix, as ``Location`` takes it (the prefix middleware adds it)."""
    kept = {key: value for key, value in query.items() if value not in (None, "")}
    return path + (f"?{urlencode(kept)}" if kept else "")


def _url(request: web.Request, path: str, **query: str | int | None) -> str:
    """A link in a page: with the prefix."""
    return path_prefix(request) + _path(path, **query)


def _cookie(request: web.Request, response: web.StreamResponse, session: Session) -> None:
    signer = request.app[UI_KEY].signer
    response.set_cookie(
        COOKIE_NAME, signer.encode(session), path=path_prefix(request) + "/", max_age=signer.lifetime,
        httponly=True, secure=public_base_url(request).startswith("https://"), samesite="Lax",
    )


def _secured(response: AnyResponse) -> AnyResponse:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def render(request: web.Request, who: Visitor, template: str, status: int = 200, **context: Any) -> web.Response:
    ui = request.app[UI_KEY]
    registry = request.app[REGISTRY_KEY]
    mirrors = request.app.get(MIRRORS_KEY)
    html = ui.templates.get_template(template).render({
        "section": "",  # which item of the navigation bar is this page's
        "prefix": path_prefix(request),
        "user": who.user,
        "can_sign_in": _can_sign_in(request),
        "may_manage_robots": manages_robots(request, who),
        "csrf": ui.signer.csrf_token(who.session),
        "read_only": registry.read_only,
        # A pull-through cache is read-only by design: the page says what it caches, not that it is locked.
        "upstream": mirrors.whole_registry_upstream if mirrors is not None else None,
        "mirrored": mirrors is not None,
        "source": mirrors.source if mirrors is not None else lambda repository: None,
        **context,
    })
    response = web.Response(text=html, status=status, content_type="text/html")
    if who.fresh:
        _cookie(request, response, who.session)
    return _secured(response)


def _redirect(request: web.Request, path: str, session: Session | None = None) -> web.Response:
    """See ``path`` (without the prefix: see :func:`_path`)."""
    response = web.Response(status=303, headers={"Location": path})
    if session is not None:
        _cookie(request, response, session)
    return _secured(response)


def _to_sign_in(request: web.Request, who: Visitor) -> web.Response:
    here = request.path_qs.removeprefix(path_prefix(request))
    return _redirect(request, _path("/ui/login", next=here), who.session if who.fresh else None)


_ERROR_TITLES = {403: "Not allowed", 404: "Not found", 405: "Not allowed"}
Handler = Callable[[web.Request, Visitor], Awaitable[web.StreamResponse]]


def page(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A page handler, given its visitor; refusals and storage errors become HTML pages."""

    async def serve(request: web.Request) -> web.StreamResponse:
        who = await visitor(request)
        try:
            return await handler(request, who)
        except Refused as refused:
            if refused.status in (401, 403) and who.user is None and _can_sign_in(request):
                return _to_sign_in(request, who)
            return render(
                request, who, "error.html", status=refused.status, title=_ERROR_TITLES.get(refused.status, "Error"),
                message=refused.message, repository=refused.repository,
            )
        except DockyardError as failure:
            # The status and message the API would answer.
            error = errors.from_domain(failure)
            return render(
                request, who, "error.html", status=error.status, title=_ERROR_TITLES.get(error.status, "Error"),
                message=error.message, repository=None,
            )

    return serve


def _check_post(request: web.Request, who: Visitor, form: Any) -> None:
    if not request.app[UI_KEY].signer.check_csrf(who.session, form.get("csrf")):
        raise Refused(403, "The form has expired or did not come from this page: reload the page and try again.")


def _may_pull(who: Visitor, name: str) -> None:
    if not who.identity.may("pull", name):
        # As for a repository that does not exist: a name must not reveal whether it does.
        raise Refused(403 if who.user is None else 404, f"No repository {name}, or you may not see it.")


def _delete_refusal(request: web.Request, who: Visitor, name: str) -> Refused | None:
    """Why the visitor may not delete in ``name`` (what the API would answer), or ``None``."""
    registry = request.app[REGISTRY_KEY]
    if registry.read_only:
        return Refused(405, "The registry is in read-only mode.")
    if not registry.delete_enabled:
        return Refused(405, "Deletes are disabled on this registry.")
    if not who.identity.may("delete", name):
        return Refused(403, f"You may not delete in {name}.")
    return None


def _may_delete(request: web.Request, who: Visitor, name: str) -> bool:
    return _delete_refusal(request, who, name) is None


def _refuse_delete(request: web.Request, who: Visitor, name: str) -> None:
    refusal = _delete_refusal(request, who, name)
    if refusal is not None:
        raise refusal


def pull_commands(request: web.Request, name: str, reference: str, kind: str) -> list[tuple[str, str]]:
    """(tool, command) pairs that pull ``reference``: docker and podman for images and indexes, oras for artifacts."""
    base = public_base_url(request)
    target = f"{base.split('://', 1)[1]}/{name}{'@' if is_digest(reference) else ':'}{reference}"
    plain = base.startswith("http://")
    if kind == "artifact":
        return [("oras", f"oras pull {'--plain-http ' if plain else ''}{target}")]
    return [("docker", f"docker pull {target}"), ("podman", f"podman pull {'--tls-verify=false ' if plain else ''}{target}")]


# Pages


@page
async def repositories(request: web.Request, who: Visitor) -> web.StreamResponse:
    if not who.identity.may_list_catalog():
        raise Refused(403, "You may not list this registry's repositories.")
    query = request.query.get("q", "").strip()
    sort = parse_sort(request.query.get("sort"), REPOSITORY_SORT_KEYS)
    per_page = parse_count(request.query.get("n"), REPOSITORIES_PER_PAGE, MAX_REPOSITORIES_PER_PAGE)
    allowed = who.identity.catalog_filter()
    needle = query.lower()

    def visible(name: str) -> bool:
        return needle in name and (allowed is None or allowed(name))

    registry = request.app[REGISTRY_KEY]
    listed = await listed_repositories(registry.driver, visible)
    if sort.key == "tags":
        listed.sort(key=lambda repository: (repository.tags, repository.name))
    if sort.descending:
        listed.reverse()
    page = page_of(len(listed), request.query.get("page"), per_page)
    browser = request.app[UI_KEY].browser
    overviews = await gather_bounded(
        listed[page.start:page.end], lambda repository: browser.overview(registry.repository(repository.name)),
        OVERVIEW_CONCURRENCY,
    )
    n = per_page if per_page != REPOSITORIES_PER_PAGE else None
    mirrors = request.app.get(MIRRORS_KEY)
    # Each sync entry's last run, as whichever worker or replica ran it wrote it.
    synced = [
        (target, await last_result(registry.driver, target.name))
        for target in (mirrors.sync_targets if mirrors is not None else []) if visible(target.name)
    ]
    return render(
        request, who, "repositories.html", title="Repositories", section="repositories", query=query, overviews=overviews,
        page=page, sort=sort, total_tags=sum(repository.tags for repository in listed), synced=synced, every=format_duration,
        sort_url=lambda key: _url(request, "/", q=query, sort=sort.toggled(key).text, n=n),
        page_url=lambda number: _url(request, "/", q=query, sort=sort.text, page=number, n=n),
    )


def _split(tail: str) -> tuple[str, str, str]:
    """``team/app/-/manifest/v1`` → (``team/app``, ``manifest``, ``v1``); a bare name → (name, "", "")."""
    name, _, rest = tail.partition("/-/")
    action, _, reference = rest.partition("/")
    check_name(name)
    # ``-/delete`` alone: the whole repository.
    if rest and (action not in ("manifest", "delete") or not (reference or action == "delete")):
        raise Refused(404, "There is no such page.")
    if reference and not is_digest(reference):
        check_tag(reference)
    return name, action, reference


@page
async def repository_pages(request: web.Request, who: Visitor) -> web.StreamResponse:
    name, action, reference = _split(request.match_info["tail"])
    _may_pull(who, name)
    if action == "manifest":
        return await _manifest(request, who, name, reference)
    if action == "delete":
        return await _confirm_delete(request, who, name, reference)
    return await _repository(request, who, name)


async def _repository(request: web.Request, who: Visitor, name: str) -> web.StreamResponse:
    registry = request.app[REGISTRY_KEY]
    repository = registry.repository(name)
    if not await repository.exists():
        raise Refused(404, f"No repository {name}, or you may not see it.")
    sort = parse_sort(request.query.get("sort"))
    per_page = parse_count(request.query.get("n"), TAGS_PER_PAGE, MAX_TAGS_PER_PAGE)
    started = time.perf_counter()
    tag_page, rows = await request.app[UI_KEY].browser.tag_page(repository, sort, request.query.get("page"), per_page)
    elapsed = time.perf_counter() - started
    base = f"/ui/r/{name}"
    return render(
        request, who, "repository.html", title=name, section="repositories", name=name, rows=rows, page=tag_page, sort=sort,
        sort_url=lambda key: _url(request, base, sort=sort.toggled(key).text),
        page_url=lambda number: _url(request, base, sort=sort.text, page=number, n=per_page if per_page != TAGS_PER_PAGE else None),
        pull=lambda reference, kind: pull_commands(request, name, reference, kind),
        may_delete=_may_delete(request, who, name), deleted=request.query.get("deleted", ""),
        immutable=lambda tag: registry.immutable.covers(name, tag),
        server_time=elapsed,
    )


async def _manifest(request: web.Request, who: Visitor, name: str, reference: str) -> web.StreamResponse:
    registry = request.app[REGISTRY_KEY]
    repository = registry.repository(name)
    browser = request.app[UI_KEY].browser
    tag = None if is_digest(reference) else reference
    try:
        digest = parse_digest(reference) if tag is None else await repository.resolve_tag(tag)
    except ManifestUnknown:
        digest = None
    if digest is None or not await repository.has_manifest(digest):
        what = f"tag {tag}" if tag else f"manifest {formats.short_digest(reference, 16)}"
        raise Refused(404, f"There is no {what} in {name}.", repository=name)
    summary = await browser.summaries.manifest(repository, digest)
    children = []
    for child in summary.children:
        child_summary = await browser.summary(repository, parse_digest(child.digest))
        children.append((child, child_summary, await browser.size(repository, child_summary)))
    tags = await repository.tags()
    other_tags = [other for other in await browser.tags_of(repository, digest, tags) if other != tag]
    index = request.query.get("index", "")  # the index the visitor came from, for the way back
    if index and not is_digest(index):
        check_tag(index)
    return render(
        request, who, "manifest.html", title=f"{name}{':' + tag if tag else '@' + formats.short_digest(str(digest))}",
        section="repositories", name=name, tag=tag, summary=summary, total=await browser.size(repository, summary),
        config=await browser.summaries.config(repository, summary), children=children,
        attachments=await browser.attachments(repository, digest, frozenset(tags)),
        other_tags=other_tags[:OTHER_TAGS_SHOWN], more_tags=max(0, len(other_tags) - OTHER_TAGS_SHOWN),
        pull=pull_commands(request, name, tag or str(digest), summary.kind),
        pull_by_digest=pull_commands(request, name, str(digest), summary.kind) if tag else [],
        may_delete=_may_delete(request, who, name), index=index, immutable_tags=await repository.immutable_tags(digest),
    )


async def _refuse_immutable(request: web.Request, name: str) -> None:
    """Said before the confirmation: the page never forces a repository delete (an admin does it with
    ``dockyard repo delete --force`` or the API's ``?force=true``)."""
    held = await request.app[REGISTRY_KEY].repository(name).immutable_tags()
    if held:
        raise Refused(403, f"{name} holds immutable tags ({', '.join(held[:5])}): only an admin may delete it, with the API or the command line.")


async def _immutable_among(registry: Registry, name: str, reference: str) -> list[str]:
    """The immutable tags deleting ``reference`` would remove: the tag itself, or those naming the digest."""
    if is_digest(reference):
        return await registry.repository(name).immutable_tags(parse_digest(reference))
    return [reference] if registry.immutable.covers(name, reference) else []


async def _confirm_delete(request: web.Request, who: Visitor, name: str, reference: str) -> web.StreamResponse:
    _refuse_delete(request, who, name)
    registry = request.app[REGISTRY_KEY]
    if not reference:
        if not await catalog.is_repository(registry.driver, name):
            raise Refused(404, f"No repository {name}, or you may not see it.")
        await _refuse_immutable(request, name)
    elif held := await _immutable_among(registry, name, reference):
        raise Refused(403, f"The tag {held[0]} is immutable: it cannot be deleted, nor the manifest it names.")
    return render(
        request, who, "delete.html", title=f"Delete {reference or name}", section="repositories", name=name,
        reference=reference, is_tag=not is_digest(reference),
    )


@page
async def delete(request: web.Request, who: Visitor) -> web.StreamResponse:
    form = await request.post()
    _check_post(request, who, form)
    name, action, reference = _split(request.match_info["tail"])
    if action != "delete":
        raise Refused(405, "Only deletes are posted here.")
    _may_pull(who, name)
    _refuse_delete(request, who, name)
    if not reference:  # refused (TagImmutable) if it holds immutable tags: the page never forces
        await delete_repository(request.app[REGISTRY_KEY], name, who.user, request, request.app.get(EVENTS_KEY))
        return _redirect(request, _path("/"))
    await delete_reference(request.app[REGISTRY_KEY], name, reference, who.user, request, request.app.get(EVENTS_KEY))
    return _redirect(request, _path(f"/ui/r/{quote(name)}", deleted=reference))


@page
async def storage(request: web.Request, who: Visitor) -> web.StreamResponse:
    if not who.identity.may_list_catalog():
        raise Refused(403, "You may not list this registry's repositories.")
    registry = request.app[REGISTRY_KEY]
    browser = request.app[UI_KEY].browser
    names = await catalog.walk(registry.driver, visible=who.identity.catalog_filter())
    overviews = await gather_bounded(names, lambda name: browser.overview(registry.repository(name)), OVERVIEW_CONCURRENCY)
    use = storage_use(overviews, LARGEST_REPOSITORIES)
    quotas = await registry.quotas.uses()
    return render(request, who, "storage.html", title="Storage", section="storage", use=use, count=len(names), quotas=quotas)


@page
async def not_found(request: web.Request, who: Visitor) -> web.StreamResponse:
    raise Refused(404, "There is no such page.")


# Signing in and out


def next_path(value: object) -> str:
    """Where to go after signing in (without the prefix): only a path on this site, no ``//host``."""
    text = value if isinstance(value, str) else ""
    if text.startswith("/") and not text.startswith("//") and "\\" not in text and not text.startswith("/ui/log"):
        return text
    return "/"


@page
async def login_form(request: web.Request, who: Visitor) -> web.StreamResponse:
    return render(request, who, "login.html", section="sign-in", title="Sign in", next=next_path(request.query.get("next")), error=None)


@page
async def login(request: web.Request, who: Visitor) -> web.StreamResponse:
    form = await request.post()
    _check_post(request, who, form)
    authenticator = _access(request).authenticator
    next_url = next_path(form.get("next"))
    user, password = str(form.get("user", "")), str(form.get("password", ""))
    if authenticator is None:
        raise Refused(404, "This registry has no users to sign in as.")
    if is_robot_user(user):
        return render(request, who, "login.html", status=401, section="sign-in", title="Sign in", next=next_url, user_name=user,
                      error="Robot accounts sign in to the registry's API, not to this page.")
    try:
        account = await authenticator.check(request, user, password) if user else None
    except TooManyFailedLogins:
        return render(request, who, "login.html", status=429, section="sign-in", title="Sign in", next=next_url, user_name=user,
                      error="Too many failed sign-ins: wait a minute and try again.")
    except DirectoryUnavailable:
        return render(request, who, "login.html", status=503, section="sign-in", title="Sign in", next=next_url, user_name=user,
                      error="The user directory cannot be reached: try again later.")
    if account is None:
        return render(request, who, "login.html", status=401, section="sign-in", title="Sign in", next=next_url, user_name=user,
                      error="Wrong user name or password.")
    audit("login", request, user=user, via="web")
    # Bound to the account the password was checked against (see dockyard.auth.binding).
    credential = _binding(request.app[UI_KEY], authenticator).stamp(account)
    return _redirect(request, next_url, request.app[UI_KEY].signer.new(user, credential))


@page
async def logout(request: web.Request, who: Visitor) -> web.StreamResponse:
    _check_post(request, who, await request.post())
    return _redirect(request, "/", request.app[UI_KEY].signer.new(None))
