"""The web page in headless Chromium: sign in, browse, copy, delete, and be refused what the policy refuses."""

from __future__ import annotations

import json
import pathlib
import re

import pytest

from tests.support.registry_client import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, descriptor, push_blob, push_manifest
from tests.support.server import DockyardProcess
from tests.ui.conftest import LONG_TAG, MANY_TAGS, QUOTA_GLOB, SHELL_SCRIPT, SIGNATURE_TYPE, USERS, Filled

expect = pytest.importorskip("playwright.sync_api").expect


def sign_in(page, user: str, password: str | None = None) -> None:
    page.goto("/ui/login")
    page.fill("input[name=user]", user)
    page.fill("input[name=password]", password or USERS[user])
    page.click("button[type=submit]")


def shoot(page, screenshots: pathlib.Path, name: str) -> None:
    page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)


def test_anonymous_visitor_is_sent_to_sign_in(context, screenshots: pathlib.Path) -> None:
    page = context.new_page()
    page.goto("/ui/r/apps/multi")
    expect(page).to_have_url(re.compile(r"/ui/login\?next=%2Fui%2Fr%2Fapps%2Fmulti$"))
    expect(page.locator("h1")).to_have_text("Sign in")
    shoot(page, screenshots, "01-sign-in")

    page.fill("input[name=user]", "admin")
    page.fill("input[name=password]", "wrong password")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_have_text("Wrong user name or password.")
    shoot(page, screenshots, "02-sign-in-failed")

    page.fill("input[name=password]", USERS["admin"])
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/ui/r/apps/multi$"))  # back where the visitor was going
    expect(page.locator(".who")).to_have_text("admin")


def test_browse_copy_and_delete(context, filled: Filled, screenshots: pathlib.Path) -> None:
    page = context.new_page()
    sign_in(page, "admin")
    names = page.locator("#repositories a.name")
    expect(names).to_have_text(["apps/multi", "apps/single", "big/many"])
    many_row = page.locator("#repositories tr", has=page.locator("a", has_text="big/many"))
    expect(many_row.locator("td").nth(1)).to_have_text(f"{MANY_TAGS + 2:,}")
    shoot(page, screenshots, "03-repositories")

    page.fill("input[name=q]", "sing")
    page.press("input[name=q]", "Enter")
    expect(names).to_have_text(["apps/single"])

    # A multi-arch index: its platforms, each linking to its image.
    page.goto("/")
    page.click("text=apps/multi")
    expect(page.locator("h1")).to_have_text("apps/multi")
    row = page.locator("#tags tr[data-tag=v1]")
    expect(row.locator(".platforms .chip")).to_have_text(["linux/amd64", "linux/arm64"])
    expect(row.locator(".badge")).to_have_text("index")
    shoot(page, screenshots, "04-repository")

    row.locator("button", has_text="docker pull").click()
    expect(row.locator("button[data-copied]")).to_have_count(1)
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == f"docker pull {filled.server.host}/apps/multi:v1"

    row.locator("a.name").click()
    expect(page.locator("#platforms a.name")).to_have_text(["linux/amd64", "linux/arm64"])
    page.locator(".command", has_text="podman").first.locator("button").click()
    assert page.evaluate("navigator.clipboard.readText()") == f"podman pull --tls-verify=false {filled.server.host}/apps/multi:v1"
    shoot(page, screenshots, "05-index")

    page.click("#platforms >> text=linux/arm64")
    expect(page.locator("#parent-index")).to_have_text("v1")  # the way back to the index
    expect(page.locator("#layers tbody tr")).to_have_count(2)
    expect(page.locator("#config")).to_contain_text("linux/arm64")
    expect(page.locator("#history tbody tr")).to_have_count(2)
    expect(page.locator("#history")).to_contain_text("layer 1")
    shoot(page, screenshots, "06-child-image")

    # An image with a signature and an SBOM: its decoded config, history sizes and referrers.
    page.goto("/ui/r/apps/single/-/manifest/1.0")
    expect(page.locator("#cmd")).to_have_text(f"/bin/sh -c {SHELL_SCRIPT}")  # as written, not JSON-escaped
    config = page.locator("#config")
    expect(page.locator("#entrypoint")).to_have_text("/bin/app")
    expect(config).to_contain_text("8080/tcp")
    expect(page.locator("#labels")).to_contain_text("platform")
    expect(page.locator("#env")).to_contain_text("PATH")
    history = page.locator("#history tbody tr")
    expect(history).to_have_count(3)
    expect(history.nth(1).locator("td").last).to_have_text("0 B")  # ENV made no layer
    sizes = page.locator("#layers tbody tr td.num:last-child")
    expect(history.nth(0).locator("td").last).to_have_text(sizes.nth(0).inner_text())
    expect(history.nth(2).locator("td").last).to_have_text(sizes.nth(1).inner_text())
    referrers = sorted([("Cosign signature", filled.signature_digest), ("SPDX SBOM", filled.sbom_digest)], key=lambda item: item[1])
    expect(page.locator("#referrers a.name")).to_have_text([label for label, _ in referrers] + ["Cosign signature"])
    expect(page.locator("#referrers tr").last).to_contain_text("tag sha256-")  # the cosign tag-based one
    expect(page.locator(".page-head .mark.signed")).to_have_text("signed ×2")
    expect(page.locator(".page-head .mark.sbom")).to_have_text("SBOM")
    expect(page.locator("#other-tags a")).to_have_text([LONG_TAG])
    expect(page.locator("#layers .compression")).to_have_text(["gzip", "gzip"])
    expect(page.locator("#labels a.external")).to_have_attribute("href", "https://example.com/app")
    shoot(page, screenshots, "07-image-with-referrers")

    page.locator("#referrers a.name").nth([digest for _, digest in referrers].index(filled.signature_digest)).click()
    expect(page.locator("#artifact-type")).to_have_text(SIGNATURE_TYPE)
    expect(page.locator("#layers")).to_contain_text("signature.sig")
    expect(page.locator("#subject")).to_have_attribute("href", re.compile(filled.image_digest + "$"))
    shoot(page, screenshots, "08-artifact")

    # 5,000 tags: a page of 100, sorted on the server.
    page.goto("/ui/r/big/many")
    expect(page.locator("#tags tbody tr")).to_have_count(100)
    expect(page.locator(".pager").first).to_contain_text(f"Page 1 of {(MANY_TAGS + 2 + 99) // 100}")
    print(f"\nwriting the 5,000 tag links took {filled.seed_seconds:.2f} s")
    print(f"5,000-tag repository, server time for page 1 by name: {page.locator('#tags').get_attribute('data-server-seconds')} s")
    shoot(page, screenshots, "09-many-tags")
    # Newest first by default: the two tags skopeo pushed, then the seeded ones from the last.
    expect(page.locator("#tags tbody tr[data-tag^=build-]").first).to_have_attribute("data-tag", f"build-{MANY_TAGS - 1:05d}")
    page.click("#tags thead >> text=Tag")
    expect(page.locator("#tags tbody tr").first).to_have_attribute("data-tag", "base")
    print(f"5,000-tag repository, server time sorted by push time: {page.locator('#tags').get_attribute('data-server-seconds')} s")
    page.click("#tags thead >> text=Size")
    expect(page).to_have_url(re.compile(r"sort=-size"))
    print(f"5,000-tag repository, server time sorted by size: {page.locator('#tags').get_attribute('data-server-seconds')} s")
    largest = page.locator("#tags tbody tr").first.locator(".badge").inner_text()
    page.click("#tags thead >> text=Size")
    expect(page).to_have_url(re.compile(r"sort=size"))
    expect(page.locator("#tags tbody tr").first.locator(".badge")).not_to_have_text(largest)
    page.locator("a", has_text="Next »").first.click()
    expect(page.locator(".pager").first).to_contain_text("Page 2 of")

    page.goto("/ui/r/big/many/-/manifest/base")  # half the 5,000 tags name this index too: the first 20 are shown
    expect(page.locator("#other-tags a")).to_have_count(20)
    expect(page.locator("#other-tags")).to_contain_text(re.compile(r"and 2,4[78]0 more$"))

    page.goto("/ui/storage")
    expect(page.locator("#largest a.name")).to_have_count(3)
    expect(page.locator("#shared-bytes")).not_to_have_text("0 B")  # big/many holds the same blobs as apps/*
    shoot(page, screenshots, "10-storage")

    # Delete a tag: a confirmation first, then it is gone from the registry.
    page.goto("/ui/r/big/many?sort=name")
    page.locator("#tags tr[data-tag=build-00000] a", has_text="Delete").click()
    expect(page.locator("h1")).to_contain_text("Delete the tag build-00000 from big/many?")
    shoot(page, screenshots, "11-confirm-delete")
    page.click("button:has-text('Delete')")
    expect(page.locator(".flash")).to_have_text("Deleted build-00000.")
    with filled.api() as api:
        assert api.get("/v2/big/many/manifests/build-00000", headers={"Accept": "*/*"}).status_code == 404
        assert api.get("/v2/big/many/manifests/build-00001", headers={"Accept": "*/*"}).status_code == 200

    page.click("text=Sign out")
    expect(page).to_have_url(re.compile(r"/ui/login\?next=%2F$"))  # nothing is public here
    expect(page.locator(".who")).to_have_count(0)
    assert page.goto("/ui/r/big/many").url.endswith("/ui/login?next=%2Fui%2Fr%2Fbig%2Fmany")


def _csrf(page) -> str:
    return page.locator("input[name=csrf]").first.get_attribute("value")


def test_reader_may_look_but_not_delete(context, filled: Filled, screenshots: pathlib.Path) -> None:
    page = context.new_page()
    sign_in(page, "reader")
    page.goto("/ui/r/big/many")
    expect(page.locator("#tags tbody tr")).to_have_count(100)
    expect(page.locator("#tags a", has_text="Delete")).to_have_count(0)
    page.goto("/ui/r/apps/single/-/manifest/1.0")
    expect(page.locator(".danger-zone")).to_have_count(0)
    shoot(page, screenshots, "12-reader")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: tables scroll inside their box, the page does not
    page.goto("/ui/r/apps/multi")
    shoot(page, screenshots, "13-phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    refused = page.goto("/ui/r/big/many/-/delete/build-00002")
    assert refused.status == 403
    # A forged form with the reader's own valid CSRF token: the server refuses it too.
    forged = context.request.post("/ui/r/big/many/-/delete/build-00002", form={"csrf": _csrf(page)}, max_redirects=0)
    assert forged.status == 403
    assert "You may not delete" in forged.text()
    with filled.api("reader") as api:
        assert api.get("/v2/big/many/manifests/build-00002", headers={"Accept": "*/*"}).status_code == 200
        assert api.delete("/v2/big/many/manifests/build-00002").status_code == 403  # and so does the API


def test_state_changes_need_the_csrf_token(context, filled: Filled) -> None:
    page = context.new_page()
    sign_in(page, "admin")
    page.goto("/ui/r/big/many")
    token = _csrf(page)
    for form in ({}, {"csrf": "forged"}, {"csrf": token + "x"}):
        response = context.request.post("/ui/r/big/many/-/delete/build-00003", form=form, max_redirects=0)
        assert response.status == 403, form
    assert context.request.post("/ui/logout", form={}, max_redirects=0).status == 403
    page.reload()
    expect(page.locator(".who")).to_have_text("admin")  # the refused logout changed nothing
    with filled.api() as api:
        assert api.get("/v2/big/many/manifests/build-00003", headers={"Accept": "*/*"}).status_code == 200


def test_under_a_path_prefix(browser, tmp_path: pathlib.Path, screenshots: pathlib.Path) -> None:
    server = DockyardProcess(tmp_path / "root", "--prefix", "/registry").start()
    try:
        import httpx

        with httpx.Client(base_url=server.url, timeout=30) as api:
            config = b'{"architecture":"amd64","os":"linux","config":{"Cmd":["/tool"]}}'
            layer = b"layer bytes" * 100
            push_blob(api, "team/tool", config, prefix="/registry", monolithic=True)
            push_blob(api, "team/tool", layer, prefix="/registry", monolithic=True)
            push_manifest(api, "team/tool", "2.0", json.dumps({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": descriptor(OCI_CONFIG, config), "layers": [descriptor(OCI_LAYER, layer)],
            }).encode(), OCI_MANIFEST, prefix="/registry")
            assert api.get("/", follow_redirects=False).status_code == 404  # nothing outside the prefix
            assert api.get("/registry", follow_redirects=False).headers["Location"] == "/registry/"
        context = browser.new_context(base_url=server.url)
        try:
            page = context.new_page()
            page.goto("/registry/")
            page.click("text=team/tool")
            expect(page).to_have_url(re.compile(r"/registry/ui/r/team/tool$"))
            page.click("#tags a.name")
            expect(page.locator("#cmd")).to_have_text("/tool")
            expect(page.locator("link[rel=stylesheet]")).to_have_attribute("href", "/registry/ui/static/style.css")
            assert page.evaluate("getComputedStyle(document.querySelector('.topbar')).display") == "flex"  # CSS loaded
            shoot(page, screenshots, "14-prefix")
            # Open mode: anybody may delete, with the form's CSRF token, and lands back under the prefix.
            page.goto("/registry/ui/r/team/tool/-/delete/2.0")
            page.click("button:has-text('Delete')")
            expect(page).to_have_url(re.compile(r"/registry/ui/r/team/tool\?deleted=2\.0$"))
            expect(page.locator(".empty")).to_contain_text("No tags")
        finally:
            context.close()
    finally:
        server.stop()


# Every page type at a phone's width and a desktop's, and dark at the narrowest phone's: nothing wider than the
# window, identifiers on one line, commands as written, and no serious accessibility fault.

WIDTHS = {"narrow": {"width": 320, "height": 640}, "phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 860}}
SERIOUS = ("serious", "critical")
ROBOT_NAME = "nightly-release-builder-for-the-platform-team"  # with -<width>: under robot names' 64 characters


def page_types(filled: Filled) -> dict[str, str]:
    return {
        "sign-in": "/ui/login",
        "front": "/",
        "repository": "/ui/r/apps/single",
        "image": f"/ui/r/apps/single/-/manifest/{LONG_TAG}",
        "index": "/ui/r/apps/multi/-/manifest/v1",
        "artifact": f"/ui/r/apps/single/-/manifest/{filled.signature_digest}",
        "cosign-signature": f"/ui/r/apps/single/-/manifest/{filled.cosign_tag}",
        "storage": "/ui/storage",
        "robot-created": "/ui/robots",  # the answer to the form: the new robot's secret, shown once
        "robots": "/ui/robots",
        "events": "/ui/events",
        "delete": f"/ui/r/apps/single/-/delete/{LONG_TAG}",
        "delete-repository": "/ui/r/apps/multi/-/delete",
        "not-found": "/ui/r/apps/single/-/manifest/no-such-tag",
    }


def one_line(locator) -> bool:
    """Whether the element is drawn as a single line of text (a word broken across lines is two)."""
    return locator.evaluate("element => element.getClientRects().length === 1 && "
                            "element.getBoundingClientRect().height < 1.6 * parseFloat(getComputedStyle(element).lineHeight)")


def axe_violations(page, axe_script: str) -> list[str]:
    page.mouse.move(0, 0)  # no hover state left by the last click (on the brand link, which has none)
    page.add_script_tag(content=axe_script)
    result = page.evaluate("axe.run(document)")
    return [f"{violation['id']} ({violation['impact']}): {[node['target'] for node in violation['nodes']]}"
            for violation in result["violations"] if violation["impact"] in SERIOUS]


@pytest.mark.parametrize(("width", "scheme"), [("phone", "light"), ("desktop", "light"), ("narrow", "dark")])
def test_every_page_fits_reads_and_passes_axe(browser, filled: Filled, screenshots: pathlib.Path, axe_script: str,
                                              width: str, scheme: str) -> None:
    # bypass_csp: axe is injected as an inline script, which the page's policy rightly refuses.
    context = browser.new_context(base_url=filled.url, viewport=WIDTHS[width], color_scheme=scheme, bypass_csp=True)
    try:
        page = context.new_page()
        faults: dict[str, list[str]] = {}
        for name, path in page_types(filled).items():
            if name == "front":
                sign_in(page, "admin")
                expect(page.locator(".who")).to_have_text("admin")
            page.goto(path)
            if name == "robot-created":
                page.fill("input[name=name]", f"{ROBOT_NAME}-{width}")
                page.fill("input[name=pull]", "apps/** big/**")
                page.fill("input[name=push]", "apps/single")
                page.click(".card.login button[type=submit]")
                expect(page.locator("#robot-secret")).to_be_visible()
            if name == "events":  # the endpoint answers 503: wait for its first failure to be written down
                for _ in range(100):
                    if page.locator("table.deliveries tr.failed").count():
                        break
                    page.wait_for_timeout(100)
                    page.reload()
            page.screenshot(path=str(screenshots / f"{name}-{width}-{scheme}.png"), full_page=True)
            overflow = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            if overflow[0] > overflow[1]:
                faults.setdefault(name, []).append(f"page is {overflow[0]} px wide in a {overflow[1]} px window")
            faults.setdefault(name, []).extend(axe_violations(page, axe_script))
            if name == "repository":
                long_tag = page.locator(f"#tags tr[data-tag='{LONG_TAG}'] a.name")
                assert one_line(long_tag), "the long tag wraps"
                assert long_tag.get_attribute("title") == LONG_TAG and long_tag.inner_text() == LONG_TAG  # whole for hover and copy
                assert one_line(page.locator(f"#tags tr[data-tag='{filled.cosign_tag}'] a.name"))
                assert all(one_line(time) for time in page.locator("#tags time").all())
                expect(page.locator(f"#tags tr[data-tag='{LONG_TAG}'] .mark.signed")).to_be_visible()
                expect(page.locator(f"#tags tr[data-tag='{filled.cosign_tag}'] .badge")).to_have_text("signature")
                expect(page.locator(f"#tags tr[data-tag='{filled.cosign_tag}'] td.actions button.copy")).to_have_text(["oras pull"])
                if width == "desktop":  # wide enough for the whole table: it does not scroll in its box either
                    assert page.evaluate("(box => box.scrollWidth <= box.clientWidth)(document.querySelector('.table-wrap'))")
            if name == "image":
                expect(page.locator("#cmd")).to_contain_text(SHELL_SCRIPT)
                assert page.locator("#cmd").inner_text() == f"/bin/sh -c {SHELL_SCRIPT}"
                assert one_line(page.locator("h1"))
                assert one_line(page.locator(".facts .digest code"))
                expect(page.locator("#pull-by-digest")).to_contain_text(f"@{filled.image_digest}")
            if name == "index":
                expect(page.locator("#platforms a.name")).to_have_text(["linux/amd64", "linux/arm64"])
            if name == "artifact":
                expect(page.locator("#label")).to_have_text("Cosign signature")
                expect(page.locator("#pull .command-label")).to_have_text(["oras"])
                expect(page.locator("#subject")).to_be_visible()
            if name == "delete":
                assert one_line(page.locator("h1 code"))
            if name == "delete-repository":
                assert one_line(page.locator("h1 code"))
                expect(page.locator("main form button[type=submit]")).to_be_visible()
            if name == "robot-created":
                assert one_line(page.locator(".created-robot h2 code"))
            if name == "robots":
                robot = page.locator("#robots td.name", has_text=f"{ROBOT_NAME}-{width}")
                assert one_line(robot.locator(".truncate")), "the robot's name wraps"
                expect(page.locator("#robot-secret")).to_have_count(0)  # shown once, with the form's answer alone
            if name == "events":
                expect(page.locator("table.deliveries tr.failed").first).to_be_visible()
                assert one_line(page.locator(".endpoint h2 .truncate").first)
            if name == "storage":
                expect(page.locator("#quotas td code")).to_have_text([QUOTA_GLOB])
            if name == "not-found":
                expect(page.locator("h1")).to_have_text("Not found")
                expect(page.locator("main")).to_contain_text("There is no tag no-such-tag in apps/single.")
                expect(page.locator("main a", has_text="Back to apps/single")).to_be_visible()
        failed = {name: found for name, found in faults.items() if found}
        assert not failed, json.dumps(failed, indent=1)
    finally:
        context.close()


def test_keyboard_alone_signs_in_copies_and_deletes(browser, filled: Filled) -> None:
    with filled.api() as api:
        manifest = api.get("/v2/apps/single/manifests/1.0", headers={"Accept": OCI_MANIFEST}).content
        push_manifest(api, "apps/single", "keyboard-delete", manifest, OCI_MANIFEST)
    context = browser.new_context(base_url=filled.url, viewport=WIDTHS["desktop"])
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=filled.url)
    try:
        page = context.new_page()

        def tab_to(selector: str) -> None:
            for _ in range(80):
                page.keyboard.press("Tab")
                if page.evaluate("selector => document.activeElement.matches(selector)", selector):
                    return
            raise AssertionError(f"Tab never reached {selector}")

        page.goto("/ui/r/apps/single")
        tab_to("input[name=user]")  # sent to the sign-in form, which keeps where the visitor was going
        page.keyboard.type("admin")
        tab_to("input[name=password]")
        page.keyboard.type(USERS["admin"])
        page.keyboard.press("Enter")
        expect(page.locator(".who")).to_have_text("admin")

        row = "#tags tr[data-tag=keyboard-delete]"  # the newest push: the first row
        tab_to(f"{row} td.actions button.copy")
        page.keyboard.press("Enter")
        assert page.evaluate("navigator.clipboard.readText()") == f"docker pull {filled.server.host}/apps/single:keyboard-delete"
        tab_to(f"{row} a.danger")
        page.keyboard.press("Enter")
        expect(page.locator("h1")).to_contain_text("Delete the tag keyboard-delete")
        tab_to("form.buttons button[type=submit]")
        page.keyboard.press("Enter")
        expect(page.locator(".flash")).to_have_text("Deleted keyboard-delete.")
        with filled.api() as api:
            assert api.get("/v2/apps/single/manifests/keyboard-delete", headers={"Accept": "*/*"}).status_code == 404
    finally:
        context.close()
