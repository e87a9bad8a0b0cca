"""The robot accounts page: administrators list, create (the secret is shown once) and remove robots."""

from __future__ import annotations

from aiohttp import web

from dockyard.auth.robots import USER_PREFIX, RobotAccounts, RobotError, parse_lifetime
from dockyard.logs import audit
from dockyard.ui.views import Refused, Visitor, _check_post, _path, _redirect, manages_robots, page, render, robot_accounts


def _robots(request: web.Request, who: Visitor) -> RobotAccounts:
    robots = robot_accounts(request)
    if robots is None:
        raise Refused(404, "This registry has no users, so no robot accounts either.")
    if not manages_robots(request, who):
        raise Refused(403, "Only administrators manage robot accounts.")
    return robots


def _globs(value: object) -> list[str]:
    """Globs from a form field: separated by spaces or commas."""
    return str(value or "").replace(",", " ").split()


async def _render(request: web.Request, who: Visitor, robots: RobotAccounts, status: int = 200, **context: object) -> web.Response:
    values: dict[str, object] = {"created": None, "secret": None, "error": None, "form": {}, "removed": ""}
    values.update(context)
    return render(
        request, who, "robots.html", status=status, title="Robot accounts", section="robots", robots=await robots.list(),
        prefix_user=USER_PREFIX, **values,
    )


@page
async def robots_page(request: web.Request, who: Visitor) -> web.StreamResponse:
    robots = _robots(request, who)
    return await _render(request, who, robots, removed=request.query.get("removed", ""))


@page
async def add_robot(request: web.Request, who: Visitor) -> web.StreamResponse:
    form = await request.post()
    _check_post(request, who, form)
    robots = _robots(request, who)
    name = str(form.get("name", "")).strip()
    lifetime_text = str(form.get("expires", "")).strip()
    try:
        lifetime = parse_lifetime(lifetime_text) if lifetime_text else None
        robot, secret = await robots.add(name, _globs(form.get("pull")), _globs(form.get("push")), _globs(form.get("delete")), lifetime)
    except RobotError as error:
        return await _render(request, who, robots, status=400, error=str(error), form={key: str(value) for key, value in form.items() if key != "csrf"})
    audit("robot_add", request, robot=robot.user, user=who.user)
    # Rendered here, never redirected to: the secret must not land in a URL or a later page.
    return await _render(request, who, robots, created=robot, secret=secret)


@page
async def remove_robot(request: web.Request, who: Visitor) -> web.StreamResponse:
    form = await request.post()
    _check_post(request, who, form)
    robots = _robots(request, who)
    name = request.match_info["name"]
    try:
        await robots.remove(name)
    except RobotError as error:
        raise Refused(404, str(error)) from None
    audit("robot_remove", request, robot=USER_PREFIX + name, user=who.user)
    return _redirect(request, _path("/ui/robots", removed=name))
