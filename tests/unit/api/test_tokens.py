"""Minting and reading bearer tokens."""

from __future__ import annotations

import time
from unittest.mock import patch

import jwt
import pytest

from api.auth import InvalidToken, Principal, Role, VerifiedTokens, mint_token, read_token
from haengbok.settings import Settings

SETTINGS = Settings()


class TestMintToken:
    def test_round_trips_subject_and_roles(self) -> None:
        token = mint_token(SETTINGS, "owner-7", [Role.RESTAURANT_OWNER, "analyst"], 60)
        assert read_token(SETTINGS, token) == Principal(
            "owner-7", frozenset({Role.RESTAURANT_OWNER, Role.ANALYST})
        )

    def test_carries_issuer_audience_and_expiry(self) -> None:
        claims = jwt.decode(
            mint_token(SETTINGS, "a", [Role.OPS], 60),
            SETTINGS.jwt_secret,
            algorithms=["HS256"],
            audience=SETTINGS.jwt_audience,
        )
        assert claims["iss"] == SETTINGS.jwt_issuer
        assert claims["exp"] - claims["iat"] == 60

    def test_refuses_unknown_roles_and_empty_subjects(self) -> None:
        with pytest.raises(ValueError):
            mint_token(SETTINGS, "a", ["root"], 60)
        with pytest.raises(ValueError):
            mint_token(SETTINGS, "", [Role.OPS], 60)


class TestReadToken:
    def test_unknown_roles_grant_nothing(self) -> None:
        token = jwt.encode(
            {
                **jwt.decode(
                    mint_token(SETTINGS, "a", [Role.CUSTOMER], 60),
                    options={"verify_signature": False},
                ),
                "roles": ["customer", "superuser"],
            },
            SETTINGS.jwt_secret,
            "HS256",
        )
        assert read_token(SETTINGS, token).roles == frozenset({Role.CUSTOMER})

    def test_a_token_for_another_secret_is_invalid(self) -> None:
        other = Settings(jwt_secret="x" * 64)
        with pytest.raises(InvalidToken):
            read_token(SETTINGS, mint_token(other, "a", [Role.CUSTOMER], 60))


class TestVerifiedTokens:
    class Clock:
        def __init__(self) -> None:
            self.now = time.time()

        def __call__(self) -> float:
            return self.now

    def test_a_verified_token_is_served_from_the_cache_until_it_expires(self) -> None:
        clock = self.Clock()
        tokens = VerifiedTokens(clock=clock)
        token = mint_token(SETTINGS, "c-1", [Role.CUSTOMER], 60)
        first = tokens.read(SETTINGS, token)
        with patch("api.auth.jwt.decode", side_effect=AssertionError("verified again")):
            assert tokens.read(SETTINGS, token) == first  # a hit: no signature check
            clock.now += 61
            with pytest.raises(AssertionError, match="verified again"):
                tokens.read(SETTINGS, token)  # past exp: not served from the cache
        assert len(tokens) == 0

    def test_an_expired_token_is_refused_even_if_it_was_cached(self) -> None:
        clock = self.Clock()
        tokens = VerifiedTokens(clock=clock)
        token = mint_token(SETTINGS, "c-1", [Role.CUSTOMER], 1)
        tokens.read(SETTINGS, token)
        clock.now += 5
        time.sleep(1.1)  # read_token checks exp against the real clock
        with pytest.raises(InvalidToken, match="expired"):
            tokens.read(SETTINGS, token)

    def test_forged_tokens_are_never_cached(self) -> None:
        tokens = VerifiedTokens()
        good = mint_token(SETTINGS, "c-1", [Role.CUSTOMER], 60)
        tokens.read(SETTINGS, good)
        head, payload, _ = good.split(".")
        forged = f"{head}.{payload}.{'A' * 43}"
        for _ in range(2):
            with pytest.raises(InvalidToken):
                tokens.read(SETTINGS, forged)
        assert len(tokens) == 1

    def test_least_recently_used_tokens_make_room(self) -> None:
        tokens = VerifiedTokens(max_size=2)
        a, b, c = (mint_token(SETTINGS, s, [Role.CUSTOMER], 60) for s in "abc")
        tokens.read(SETTINGS, a)
        tokens.read(SETTINGS, b)
        tokens.read(SETTINGS, a)  # a is now the most recent
        tokens.read(SETTINGS, c)
        with patch("api.auth.jwt.decode", side_effect=AssertionError("verified again")):
            assert tokens.read(SETTINGS, a).subject == "a"
            with pytest.raises(AssertionError):
                tokens.read(SETTINGS, b)
