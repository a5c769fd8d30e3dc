"""Credential references: env, prompt (TTY only), simulator, defaults and redaction."""

from __future__ import annotations

import logging

import pytest

from fleet_ecs.credentials import (
    CREDENTIAL_ENV,
    CredentialStore,
    reference_for,
    reference_problem,
    resolve_credentials,
)
from fleet_ecs.errors import CredentialError
from fleet_ecs.models import HostSpec

SECRET = "s3cret-Value-42"


def host(name: str, **kwargs: object) -> HostSpec:
    return HostSpec(name=name, address=name, port=5985, **kwargs)  # type: ignore[arg-type]


class FakeGetpass:
    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        return self.answers.pop(0)


def refuse_getpass(prompt: str) -> str:
    raise AssertionError(f"unexpected prompt {prompt!r}")


def test_env_reference() -> None:
    hosts = [host("a", username="u", credential="env:PW"), host("b", credential="env:PW")]
    store = resolve_credentials(hosts, environ={"PW": SECRET}, getpass=refuse_getpass)
    assert store.password_for(hosts[0]) == SECRET
    assert store.password_for(hosts[1]) == SECRET


@pytest.mark.parametrize(("environ", "word"), [({}, "is not set"), ({"PW": ""}, "is empty")])
def test_env_missing_or_empty(environ: dict[str, str], word: str) -> None:
    with pytest.raises(CredentialError, match=f"environment variable PW .*{word}"):
        resolve_credentials([host("a", credential="env:PW")], environ=environ)


def test_env_error_never_shows_other_values() -> None:
    hosts = [host("a", credential="env:GOOD"), host("b", credential="env:MISSING")]
    with pytest.raises(CredentialError) as caught:
        resolve_credentials(hosts, environ={"GOOD": SECRET})
    assert "MISSING" in str(caught.value) and SECRET not in str(caught.value)


def test_prompt_once_per_user_with_tty() -> None:
    fake = FakeGetpass("pw-for-alice", "pw-for-bob")
    hosts = [
        host("a1", username="alice", credential="prompt"),
        host("a2", username="alice"),  # no credential: prompt is the default
        host("b1", username="bob", credential="prompt"),
    ]
    store = resolve_credentials(hosts, stdin_is_tty=True, getpass=fake, environ={})
    assert len(fake.prompts) == 2
    assert "alice" in fake.prompts[0] and "a1, a2" in fake.prompts[0]
    assert "bob" in fake.prompts[1]
    assert [store.password_for(h) for h in hosts] == ["pw-for-alice", "pw-for-alice", "pw-for-bob"]


def test_prompt_refused_without_tty() -> None:
    hosts = [host("a", username="alice", credential="prompt")]
    with pytest.raises(CredentialError, match=r"not a terminal.*env:NAME"):
        resolve_credentials(hosts, stdin_is_tty=False, getpass=refuse_getpass, environ={})


def test_prompt_answered_by_fleet_ecs_credential() -> None:
    hosts = [host("a", username="alice")]
    store = resolve_credentials(
        hosts, stdin_is_tty=False, getpass=refuse_getpass, environ={CREDENTIAL_ENV: SECRET}
    )
    assert store.password_for(hosts[0]) == SECRET


@pytest.mark.parametrize("answer", ["", EOFError(), KeyboardInterrupt()])
def test_prompt_empty_or_cancelled(answer: object) -> None:
    def fake(prompt: str) -> str:
        if isinstance(answer, BaseException):
            raise answer
        return str(answer)

    with pytest.raises(CredentialError, match="alice"):
        resolve_credentials(
            [host("a", username="alice")], stdin_is_tty=True, getpass=fake, environ={}
        )


def test_simulator_reference() -> None:
    sim = pytest.importorskip("fleet_ecs.sim.credentials")
    target = host("sim01", username="demo", credential="simulator", auth="basic")
    store = resolve_credentials([target], getpass=refuse_getpass, environ={})
    assert store.password_for(target) == sim.DEMO_PASSWORD


def test_no_password_needed() -> None:
    kerberos_cache = host("k", auth="kerberos")
    certificate = host("c", auth="certificate", username="u", credential="env:PW")
    assert reference_for(kerberos_cache) is None
    assert reference_for(certificate) is None
    store = resolve_credentials(
        [kerberos_cache, certificate], stdin_is_tty=False, getpass=refuse_getpass, environ={}
    )
    assert len(store) == 0
    assert store.password_for(kerberos_cache) is None
    assert store.password_for(certificate) is None


def test_unresolved_host() -> None:
    store = resolve_credentials([], environ={})
    with pytest.raises(CredentialError, match="no credential was resolved for host x"):
        store.password_for(host("x", credential="env:PW"))


def test_repr_and_str_redact(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="fleet_ecs.credentials")
    hosts = [host("a", username="alice", credential="env:PW"), host("b", username="bob")]
    store = resolve_credentials(
        hosts, stdin_is_tty=True, getpass=FakeGetpass("typed-" + SECRET), environ={"PW": SECRET}
    )
    for text in (repr(store), str(store), f"{store}", f"{store!r}", caplog.text):
        assert SECRET not in text
    assert "env:PW for alice" in repr(store) and "prompt for bob" in repr(store)
    assert ("env:PW", "alice") in store
    assert isinstance(store, CredentialStore)


@pytest.mark.parametrize("reference", ["env:PW", "env:_X1", "prompt", "simulator"])
def test_valid_references(reference: str) -> None:
    assert reference_problem(reference) is None


@pytest.mark.parametrize("reference", ["hunter2", "env:", "env:1X", "env:A-B", "Prompt", 42])
def test_invalid_references_are_not_echoed(reference: object) -> None:
    problem = reference_problem(reference)
    assert problem is not None
    if isinstance(reference, str) and reference != "env:":
        assert reference.removeprefix("env:") not in problem
