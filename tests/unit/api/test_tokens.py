"""Minting and reading bearer tokens."""

from __future__ import annotations

import jwt
import pytest

from api.auth import InvalidToken, Principal, Role, mint_token, read_token
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
