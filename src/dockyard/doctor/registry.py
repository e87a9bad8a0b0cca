"""The registry API as a client meets it: ``/v2/`` and its version header, the clock, the auth
challenge and its realm, and a sign-in with a token for a scope."""

from __future__ import annotations

import base64
import datetime
import email.utils
import re
import ssl
from dataclasses import dataclass
from typing import Any

import httpx

from dockyard.doctor.machine import Credentials
from dockyard.doctor.network import TIMEOUT, Target, unverified_context
from dockyard.doctor.results import Check, fail, ok, warn

API_VERSION = "Docker-Distribution-Api-Version"
SKEW_WARN = datetime.timedelta(seconds=60)
SKEW_FAIL = datetime.timedelta(minutes=5)  # longer than the tokens of registry:2's token servers live
_PARAMETER = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer"
    parameters: dict[str, str]

    @classmethod
    def parse(cls, header: str) -> Challenge:
        scheme, _, rest = header.strip().partition(" ")
        parameters = {key.lower(): bare or quoted.replace('\\"', '"') for key, quoted, bare in _PARAMETER.findall(rest)}
        return cls(scheme.lower(), parameters)


def request(client: httpx.Client, method: str, url: str, **options: Any) -> httpx.Response | str:
    """The response, or what went wrong on the way as one line."""
    try:
        return client.request(method, url, **options)
    except (httpx.HTTPError, httpx.InvalidURL) as error:
        return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def ping(client: httpx.Client, target: Target) -> tuple[list[Check], httpx.Response | None]:
    """``GET /v2/``: the API is there, says its version, and the server's clock agrees with ours."""
    answer = request(client, "GET", "/v2/")
    if isinstance(answer, str):
        return [fail(
            "api", f"GET /v2/ failed: {answer}",
            "the port accepts connections but does not answer HTTP requests: check that the registry (or its proxy) serves it",
        )], None
    checks = []
    versions = answer.headers.get_list(API_VERSION)
    if answer.status_code not in (200, 401):
        checks.append(fail(
            "api", f"GET /v2/ answered {answer.status_code}: not a registry's API",
            "route /v2/ to the registry (a proxy's location /v2/ { proxy_pass ... }), or use the registry's own port",
        ))
    elif "registry/2.0" not in versions:
        checks.append(warn(
            "api", f"GET /v2/ answered {answer.status_code} without '{API_VERSION}: registry/2.0'",
            f"a proxy drops the header: pass it through (nginx: add_header {API_VERSION} registry/2.0 always)",
        ))
    else:
        checks.append(ok("api", f"GET /v2/ answered {answer.status_code} with {API_VERSION}: registry/2.0"))
    checks.append(clock_check(answer))
    return checks, answer


def clock_check(response: httpx.Response) -> Check:
    header = response.headers.get("Date")
    try:
        server = email.utils.parsedate_to_datetime(header) if header else None
    except ValueError:
        server = None
    if server is None:
        return warn("clock", "the server sends no Date header: clock skew unknown", "make the registry or proxy send Date")
    skew = server - datetime.datetime.now(datetime.UTC)
    said = f"the server's clock is {abs(skew.total_seconds()):.0f} s {'ahead of' if skew > datetime.timedelta(0) else 'behind'} this machine's"
    fix = "run NTP (chrony, systemd-timesyncd) on both machines"
    if abs(skew) > SKEW_FAIL:
        return fail("clock", f"{said}: tokens and certificates look expired or not yet valid", fix)
    if abs(skew) > SKEW_WARN:
        return warn("clock", said, fix)
    return ok("clock", "this machine's clock agrees with the server's Date")


def challenge_checks(client: httpx.Client, target: Target, scheme: str, ping_response: httpx.Response) -> tuple[list[Check], Challenge | None]:
    if ping_response.status_code == 200:
        return [ok("auth", "GET /v2/ needs no sign-in")], None
    header = ping_response.headers.get("WWW-Authenticate")
    if ping_response.status_code != 401:
        return [], None
    if not header:
        return [fail(
            "auth", "401 without a WWW-Authenticate header: clients cannot tell how to sign in",
            "a proxy drops it: pass WWW-Authenticate through (with nginx auth_basic, nginx sends its own)",
        )], None
    challenge = Challenge.parse(header)
    if challenge.scheme == "basic":
        if scheme == "http":
            return [warn("auth", "Basic authentication over plain HTTP: the password crosses the network in clear", "serve TLS")], challenge
        return [ok("auth", "Basic authentication")], challenge
    if challenge.scheme != "bearer":
        return [fail(
            "auth", f"challenge {challenge.scheme!r}: docker, podman and skopeo speak Basic and Bearer only",
            "use Basic or token (Bearer) authentication",
        )], challenge
    realm = challenge.parameters.get("realm", "")
    if not realm.startswith(("https://", "http://")):
        return [fail(
            "auth", f"Bearer challenge with realm {realm!r}: not a URL clients can ask for a token",
            "set auth.token.realm to the token server's full https:// URL",
        )], challenge
    checks = [ok("auth", f"Bearer tokens from {realm} (service {challenge.parameters.get('service', '(none)')!r})")]
    # Reachability only, no password: its certificate is judged apart (auth realm certificate).
    with httpx.Client(verify=unverified_context(), timeout=TIMEOUT) as anonymous:
        answer = request(anonymous, "GET", realm, params={"service": challenge.parameters.get("service", "")})
    if isinstance(answer, str):
        checks.append(fail(
            "auth realm", f"{realm} cannot be reached from here: {answer} (docker login says 'EOF' or times out)",
            "auth.token.realm must be a URL clients can reach: the public name, not an internal one",
        ))
    elif realm.startswith("http://") and scheme == "https":
        checks.append(warn("auth realm", f"{realm} answers {answer.status_code}, over plain HTTP: passwords travel in clear", "serve the token realm over https://"))
    else:
        checks.append(ok("auth realm", f"{realm} answers {answer.status_code}"))
    return checks, challenge


def token(client: httpx.Client, challenge: Challenge, credentials: Credentials, scope: str) -> str | Check:
    """A Bearer token for ``scope`` from the challenge's realm, or the failed check."""
    params = {"service": challenge.parameters.get("service", ""), "scope": scope}
    answer = request(client, "GET", challenge.parameters["realm"], params=params, auth=(credentials.username, credentials.password))
    if isinstance(answer, str):
        return fail("token", f"asking {challenge.parameters['realm']} for {scope} failed: {answer}", "check that the token server is reachable from here")
    if answer.status_code != 200:
        return fail(
            "token", f"{challenge.parameters['realm']} refused {credentials.username} ({answer.status_code}): 'unauthorized: authentication required'",
            f"check the user name and password ({credentials.source})",
        )
    try:
        document = answer.json()
        found = document.get("token") or document.get("access_token")
    except (ValueError, AttributeError):
        found = None
    if not isinstance(found, str) or not found:
        return fail(
            "token", f"{challenge.parameters['realm']} answered 200 without a token",
            "the realm must answer {\"token\": ...} as the token specification says",
        )
    return found


def authorization(client: httpx.Client, challenge: Challenge, credentials: Credentials, scope: str) -> dict[str, str] | Check:
    """The header that signs requests in for ``scope``, or the failed check."""
    if challenge.scheme == "basic":
        pair = base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()
        return {"Authorization": f"Basic {pair}"}
    found = token(client, challenge, credentials, scope)
    return found if isinstance(found, Check) else {"Authorization": f"Bearer {found}"}


def sign_in(client: httpx.Client, challenge: Challenge, credentials: Credentials, scope: str) -> tuple[list[Check], dict[str, str] | None]:
    """The checks, and the header that signs requests in for ``scope`` when the sign-in worked."""
    header = authorization(client, challenge, credentials, scope)
    if isinstance(header, Check):
        return [header], None
    checks = [ok("token", f"a token for {scope}")] if challenge.scheme == "bearer" else []
    answer = request(client, "GET", "/v2/", headers=header)
    if isinstance(answer, str):
        checks.append(fail("sign-in", f"GET /v2/ signed in failed: {answer}", "retry; check the registry's logs"))
    elif answer.status_code == 200:
        checks.append(ok("sign-in", f"{credentials.username} signs in ({credentials.source})"))
        return checks, header
    else:
        checks.append(fail(
            "sign-in", f"{credentials.username} is refused ({answer.status_code}): 'unauthorized: authentication required'",
            f"check the user name and password ({credentials.source}); a registry:2 htpasswd file needs bcrypt hashes (htpasswd -B)",
        ))
    return checks, None


def new_client(target: Target, scheme: str, verify: ssl.SSLContext) -> httpx.Client:
    return httpx.Client(base_url=f"{scheme}://{target.host_port}", verify=verify, timeout=TIMEOUT, follow_redirects=False)
