"""Access policies: globs, groups, anonymous users, admins, and bad files refused by name."""

from __future__ import annotations

import pathlib
import textwrap

import pytest

from dockyard.api.auth_setup import AuthSettings, AuthSetupError
from dockyard.auth import policy as policies
from dockyard.auth.policy import ACTIONS, OPEN_TO_USERS, PolicyError, from_document, glob_pattern
from tests.support.auth import MATRIX_POLICY


def policy_of(text: str) -> policies.Policy:
    import yaml

    return from_document(yaml.safe_load(textwrap.dedent(text)), "p.yaml")


@pytest.mark.parametrize(
    ("glob", "name", "matches"),
    [
        ("a/*", "a/app", True),
        ("a/*", "a/app/sub", False),
        ("a/*", "b/app", False),
        ("a/*", "a", False),
        ("a/**", "a/app", True),
        ("a/**", "a/app/sub/deeper", True),
        ("a/**", "ab/app", False),
        ("*", "app", True),
        ("*", "a/app", False),
        ("**", "a/b/c", True),
        ("*/app", "x/app", True),
        ("*/app", "x/y/app", False),
        ("**/app", "x/y/app", True),
        ("**/app", "x/y/app2", False),
        ("team.a/*", "team.a/x", True),
        ("team.a/*", "teamxa/x", False),  # the dot is literal
        ("a/app", "a/app", True),
        ("a/app", "a/apps", False),
        ("a/app-*", "a/app-1", True),
        ("a/app-*", "a/app-1/x", False),
    ],
)
def test_globs(glob: str, name: str, matches: bool) -> None:
    assert bool(glob_pattern(glob).fullmatch(name)) is matches


def test_star_and_double_star_in_rules() -> None:
    policy = policy_of(
        """
        rules:
          - who: [bob]
            repositories: ["one/*"]
            actions: [pull]
          - who: [bob]
            repositories: ["deep/**"]
            actions: [pull, push]
        """
    )
    assert policy.allowed("bob", "one/x") == {"pull"}
    assert policy.allowed("bob", "one/x/y") == frozenset()
    assert policy.allowed("bob", "deep/x/y/z") == {"pull", "push"}
    assert policy.allowed("bob", "deep") == frozenset()


def test_groups_and_rules_add_up() -> None:
    policy = policy_of(
        """
        groups:
          devs: [bob, carol]
          ops: [carol]
        rules:
          - who: [group:devs]
            repositories: ["app/*"]
            actions: [pull, push]
          - who: [group:ops]
            repositories: ["app/*"]
            actions: delete
          - who: dave
            repositories: "app/web"
            actions: [pull]
        """
    )
    assert policy.allowed("bob", "app/web") == {"pull", "push"}
    assert policy.allowed("carol", "app/web") == {"pull", "push", "delete"}
    assert policy.allowed("dave", "app/web") == {"pull"}
    assert policy.allowed("dave", "app/api") == frozenset()
    assert policy.allowed("eve", "app/web") == frozenset()
    # A user named like a group is not its member.
    assert policy.allowed("devs", "app/web") == frozenset()


def test_anonymous_and_any_signed_in_user() -> None:
    policy = policy_of(
        """
        rules:
          - who: [anonymous]
            repositories: ["public/**"]
            actions: [pull]
          - who: ["*"]
            repositories: ["shared/*"]
            actions: [pull, push]
        """
    )
    assert policy.allowed(None, "public/x/y") == {"pull"}
    assert policy.allowed(None, "shared/x") == frozenset()  # "*" is any signed-in user, not anonymous
    assert policy.allowed(None, "other/x") == frozenset()
    assert policy.allowed("bob", "shared/x") == {"pull", "push"}
    # What anonymous users may do, a signed-in user may do too (``docker login`` must not lose access).
    assert policy.allowed("bob", "public/x/y") == {"pull"}
    assert policy.may_list_catalog(None) is True
    assert policy.may_list_catalog("bob") is True


def test_admins_may_do_everything() -> None:
    policy = policy_of(
        """
        admins: [alice]
        rules:
          - who: [bob]
            repositories: ["b/*"]
            actions: [pull]
        """
    )
    assert policy.allowed("alice", "any/thing/at/all") == ACTIONS
    assert policy.is_admin("alice") is True
    assert policy.is_admin("bob") is False
    assert policy.is_admin(None) is False
    assert policy.may_list_catalog("alice") is True
    assert policy.may_list_catalog("bob") is True
    assert policy.may_list_catalog("carol") is False
    assert policy.may_list_catalog(None) is False
    assert policy.allowed(None, "b/x") == frozenset()


def test_no_policy_means_signed_in_users_may_do_everything() -> None:
    assert OPEN_TO_USERS.allowed("anyone", "x/y") == ACTIONS
    assert OPEN_TO_USERS.allowed(None, "x/y") == frozenset()
    assert OPEN_TO_USERS.is_admin("anyone") is True


def test_empty_policy_file_is_refused(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("")
    with pytest.raises(PolicyError, match="expected a mapping with admins, groups and rules"):
        policies.load(path)


def test_policy_without_rules_allows_nothing() -> None:
    policy = policy_of("admins: []\n")
    assert policy.allowed("bob", "x") == frozenset()
    assert policy.allowed(None, "x") == frozenset()
    assert policy.may_list_catalog("bob") is False


def test_matrix_policy_loads(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(MATRIX_POLICY)
    policy = policies.load(path)
    assert policy.allowed("reader", "a/app") == {"pull"}
    assert policy.allowed("writer", "a/app") == ACTIONS
    assert policy.allowed("writer", "b/app") == frozenset()
    assert policy.allowed("root", "b/app") == ACTIONS
    assert policy.allowed(None, "public/app") == {"pull"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- just\n- a list\n", "p.yaml: expected a mapping with admins, groups and rules"),
        ("rulez: []\n", "p.yaml: unknown key(s) rulez"),
        ("admins: [a]\nusers: [b]\nrules: []\n", "p.yaml: unknown key(s) users"),
        ("groups: [a, b]\n", "p.yaml: groups must map group names to lists of users"),
        ("groups:\n  devs: {bob: 1}\n", "p.yaml: groups.devs must be a string or a list of strings"),
        ("admins: {alice: true}\n", "p.yaml: admins must be a string or a list of strings"),
        ("rules:\n  - who: [bob]\n    repos: [a]\n    actions: [pull]\n", "p.yaml: rules[0]: unknown key(s) repos"),
        ("rules: 5\n", "p.yaml: rules must be a list of rules"),
        ("rules: {who: bob}\n", "p.yaml: rules must be a list of rules"),
        ("rules:\n  - pull\n", "p.yaml: rules[0] must be a mapping of who, repositories and actions"),
        ("rules:\n  - who: [bob]\n    repositories: [a]\n    actions: [pull, write]\n", "p.yaml: rules[0].actions: unknown write (pull, push, delete)"),
        ("rules:\n  - who: 5\n    repositories: [a]\n", "p.yaml: rules[0].who must be a string or a list of strings"),
        ("rules:\n  - who: [bob]\n    repositories: [[a]]\n", "p.yaml: rules[0].repositories must be a string or a list of strings"),
        (
            "rules:\n  - who: [bob]\n    repositories: [a]\n    actions: [pull]\n  - who: [group:devs]\n    repositories: [a]\n",
            "p.yaml: rules[1].who: no group 'devs' in groups",
        ),
    ],
)
def test_bad_policy_is_refused_by_name(tmp_path: pathlib.Path, text: str, message: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as caught:
        policies.load(path)
    assert str(caught.value) == message.replace("p.yaml", str(path))


def test_invalid_yaml_and_missing_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("rules: [\n")
    with pytest.raises(PolicyError, match=r"p\.yaml is not valid YAML"):
        policies.load(path)
    with pytest.raises(PolicyError, match=r"cannot read .*absent\.yaml: No such file or directory"):
        policies.load(tmp_path / "absent.yaml")


def test_auth_settings_refuse_a_bad_policy(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("rulez: []\n")
    with pytest.raises(AuthSetupError, match=r"unknown key\(s\) rulez"):
        AuthSettings(policy_file=path).build()
