from __future__ import annotations

import hashlib
import hmac
import secrets

import pytest

from domain.credentials import (
    CredentialFinding,
    find_production_credentials,
    is_comparable,
    names_production,
)

KEY = b"k" * 32
WITNESS = "Witness-s3cret-PROD-value-4711"
"""A production secret; it must never appear in a finding or an error."""


def findings(staging: dict[str, str], production: dict[str, str] | None = None,
             **others: dict[str, str]) -> list[CredentialFinding]:
    configs = {"production": production or {}, "staging": staging, **others}
    return find_production_credentials(configs, key=KEY)


def kinds_and_names(result: list[CredentialFinding]) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(f.kind, f.environment, f.names) for f in result]


# --- shared with production -------------------------------------------------------------

@pytest.mark.parametrize(("staging", "production", "expected"), [
    # the same password under the same name: both names
    ({"DB_PASSWORD": WITNESS}, {"DB_PASSWORD": WITNESS},
     [("DB_PASSWORD", "production:DB_PASSWORD")]),
    # a secret-looking name on one side is enough, either side
    ({"DB_PW": WITNESS}, {"DB_PASSWORD": WITNESS}, [("DB_PW", "production:DB_PASSWORD")]),
    ({"STRIPE_API_KEY": WITNESS}, {"STRIPE": WITNESS},
     [("STRIPE_API_KEY", "production:STRIPE")]),
    # one value held by several variables is one finding naming them all
    ({"A_TOKEN": WITNESS, "B_TOKEN": WITNESS},
     {"A_TOKEN": WITNESS, "REPLICA_TOKEN": WITNESS},
     [("A_TOKEN", "B_TOKEN", "production:A_TOKEN", "production:REPLICA_TOKEN")]),
    # each secret-name form
    *[({name: WITNESS}, {name: WITNESS}, [(name, f"production:{name}")])
      for name in ("APP_SECRET", "passwd", "GITHUB_TOKEN", "APIKEY", "PRIVATE_KEY",
                   "privatekey", "AWS_CREDENTIALS", "SENTRY_DSN", "DB_CONN_STR",
                   "ConnectionString", "DB_CONNSTR")],
    # different values
    ({"DB_PASSWORD": "staging-only-password"}, {"DB_PASSWORD": WITNESS}, []),
    # names that do not look secret on either side are not compared
    ({"BASE_URL": "https://api.example.com"}, {"BASE_URL": "https://api.example.com"}, []),
    ({"REGION": "eu-west-1-long"}, {"AWS_REGION": "eu-west-1-long"}, []),
    # short values, booleans and numbers are never compared
    ({"DB_PASSWORD": "admin12"}, {"DB_PASSWORD": "admin12"}, []),
    ({"TOKEN_CHECK_ENABLED": "disabled"}, {"TOKEN_CHECK_ENABLED": "disabled"}, []),
    ({"TOKEN_TTL_SECONDS": "86400000"}, {"TOKEN_TTL_SECONDS": "86400000"}, []),
    ({"TOKEN_RATIO": "0.125000001"}, {"TOKEN_RATIO": "0.125000001"}, []),
    # exactly the minimum length is compared
    ({"DB_PASSWORD": "abcdefgh"}, {"DB_PASSWORD": "abcdefgh"},
     [("DB_PASSWORD", "production:DB_PASSWORD")]),
])
def test_shared_with_production(staging, production, expected):
    result = [f for f in findings(staging, production) if f.kind == "shared_with_production"]
    assert [f.names for f in result] == expected
    assert all(f.environment == "staging" for f in result)


def test_is_comparable():
    assert is_comparable("abcdefgh")
    assert not is_comparable("abcdefg")
    assert not is_comparable("  true  ")
    assert not is_comparable("12345678901")
    assert not is_comparable("-1.5e10000")


def test_shared_reason_names_both_sides():
    [finding] = findings({"DB_PASSWORD": WITNESS}, {"DB_PASSWORD": WITNESS})
    assert finding.reason == (
        "staging: DB_PASSWORD holds the same value as production's DB_PASSWORD "
        "(compared by keyed fingerprint); a production credential must not be used "
        "outside production")


def test_every_non_production_environment_is_checked_and_production_never_reported():
    configs = {
        "production": {"DB_PASSWORD": WITNESS, "PROD_DB_URL": "postgres://db.prod.internal/x"},
        "test": {"DB_PASSWORD": WITNESS},
        "staging": {"DB_PASSWORD": WITNESS},
        "dev": {"DB_PASSWORD": "dev-password-1"},
    }
    result = find_production_credentials(configs, key=KEY)
    assert kinds_and_names(result) == [
        ("shared_with_production", "staging", ("DB_PASSWORD", "production:DB_PASSWORD")),
        ("shared_with_production", "test", ("DB_PASSWORD", "production:DB_PASSWORD")),
    ]


def test_the_production_environment_can_have_another_name():
    configs = {"prd": {"API_TOKEN": WITNESS}, "staging": {"API_TOKEN": WITNESS}}
    [finding] = find_production_credentials(configs, "prd", key=KEY)
    assert finding.names == ("API_TOKEN", "prd:API_TOKEN")


def test_the_result_does_not_depend_on_the_key():
    configs = {"production": {"API_TOKEN": WITNESS}, "staging": {"API_TOKEN": WITNESS}}
    first = find_production_credentials(configs, key=secrets.token_bytes(32))
    second = find_production_credentials(configs, key=secrets.token_bytes(32))
    assert first == second and len(first) == 1


# --- points at production -----------------------------------------------------------------

@pytest.mark.parametrize(("name", "value", "expected"), [
    # PROD / PRODUCTION as a word part of the name
    ("PROD_DB_PASSWORD", "x", True),
    ("DB_PROD_URL", "x", True),
    ("PRODUCTION_API_TOKEN", "x", True),
    ("PROD2_HOST", "x", True),
    ("dbProdUrl", "x", True),
    ("PRODUCT_ID", "x", False),
    ("PRODUCTS_API_URL", "https://products-api.example.com", False),
    ("REPRODUCE_BUG", "x", False),
    ("PREPROD_URL", "x", False),
    ("PRE_PROD_URL", "x", False),
    ("NON_PROD_TOKEN", "x", False),
    # a URL or DSN whose host names production; the password is not looked at
    ("DATABASE_URL", "postgres://app:hunter2@db.prod.internal:5432/app", True),
    ("API_URL", "https://prod-db.example.com/v1", True),
    ("API_URL", "https://api.production.example.com", True),
    ("API_URL", "https://products-api.example.com/prod/v1", False),
    ("DATABASE_URL", "postgres://app:prod-password@db.staging.internal/app", False),
    ("DATABASE_URL", "postgres://app:pw@db.preprod.internal/app", False),
    ("DATABASE_URL", "postgresql://db1.staging.internal,db2.prod.internal/app", True),
    ("JDBC_URL", "jdbc:postgresql://prod-db:5432/app", True),
    ("OP_REF", "op://prod/database/password", True),
    # key=value connection strings
    ("CONN_STR", "host=db.prod.internal port=5432 dbname=app user=app", True),
    ("CONN_STR", "Server=tcp:prod-sql.database.windows.net,1433;Database=app", True),
    ("CONN_STR", "Data Source=sql.staging.local;Initial Catalog=prod_copy", False),
    # secret references
    ("DB_SECRET", "vault:secret/production/db", True),
    ("DB_SECRET", "vault:secret/data/prod/db#password", True),
    ("DB_SECRET", "vault:secret/staging/db", False),
    ("DB_SECRET", "arn:aws:secretsmanager:eu-west-1:123:secret:prod/db-AbCd", True),
    ("DB_SECRET", "arn:aws:ssm:eu-west-1:123:parameter/production/db/password", True),
    ("DB_SECRET", "arn:aws:secretsmanager:eu-west-1:123:secret:staging/db-AbCd", False),
    ("DB_SECRET", "{{ prefect.blocks.secret.prod-db }}", True),
    ("DB_SECRET", "{{resolve:secretsmanager:production/db:SecretString:password}}", True),
    ("DB_SECRET", "{{ prefect.blocks.secret.products-db }}", False),
    ("DB_SECRET", "projects/x/secrets/prod-db/versions/1", True),
    ("DB_SECRET", "projects/acme-prod/secrets/db/versions/latest", True),
    ("DB_SECRET", "projects/x/secrets/staging-db/versions/1", False),
    ("DB_PASSWORD", "${PROD_DB_PASSWORD}", True),
    # a plain value that merely contains the word is not a reference
    ("GREETING", "hello prod world", False),
])
def test_points_at_production(name, value, expected):
    result = findings({name: value})
    assert kinds_and_names(result) == (
        [("points_at_production", "staging", (name,))] if expected else [])


def test_pointer_reason_gives_every_reason_without_the_value():
    value = "postgres://app:hunter2-secret@db.prod.internal/app"
    [finding] = findings({"PROD_DATABASE_URL": value})
    assert finding.reason == (
        "staging: PROD_DATABASE_URL points at production: its name has a PROD or "
        "PRODUCTION word part; its value is a URL whose host names production")
    assert "hunter2" not in repr(finding) and "db.prod.internal" not in repr(finding)


@pytest.mark.parametrize(("text", "expected"), [
    ("prod", True), ("PROD", True), ("Production", True), ("my-prod-db", True),
    ("product", False), ("reprod", False), ("pre-prod", False), ("nonprod", False),
    ("prod-pre", True),
])
def test_names_production(text, expected):
    assert names_production(text) is expected


# --- order, secrecy, errors ---------------------------------------------------------------

def test_findings_are_ordered_by_environment_kind_and_names():
    configs = {
        "production": {"B_TOKEN": WITNESS, "A_TOKEN": WITNESS + "-a"},
        "test": {"PROD_URL": "x", "B_TOKEN": WITNESS},
        "staging": {"Z_PROD": "x", "B_TOKEN": WITNESS, "A_TOKEN": WITNESS + "-a",
                    "PROD_A": "x"},
    }
    result = find_production_credentials(configs, key=KEY)
    assert kinds_and_names(result) == [
        ("points_at_production", "staging", ("PROD_A",)),
        ("points_at_production", "staging", ("Z_PROD",)),
        ("shared_with_production", "staging", ("A_TOKEN", "production:A_TOKEN")),
        ("shared_with_production", "staging", ("B_TOKEN", "production:B_TOKEN")),
        ("points_at_production", "test", ("PROD_URL",)),
        ("shared_with_production", "test", ("B_TOKEN", "production:B_TOKEN")),
    ]
    reordered = {name: dict(reversed(list(v.items())))
                 for name, v in reversed(list(configs.items()))}
    assert find_production_credentials(reordered, key=KEY) == result


def test_no_value_or_fingerprint_ever_appears_in_a_finding():
    reference = f"postgres://app:{WITNESS}@db.prod.internal/app"
    configs = {
        "production": {"DB_PASSWORD": WITNESS, "DATABASE_DSN": reference},
        "staging": {"DB_PASSWORD": WITNESS, "PROD_DB_PASSWORD": WITNESS,
                    "DATABASE_DSN": reference, "VAULT_DB": "vault:secret/prod/" + WITNESS},
    }
    result = find_production_credentials(configs, key=KEY)
    assert len(result) == 5
    text = repr(result) + "".join(f.reason for f in result) + str(
        [f.model_dump() for f in result])
    assert "s3cret" not in text.lower()
    assert WITNESS.lower() not in text.lower()
    digest = hmac.new(KEY, WITNESS.encode(), hashlib.sha256)
    assert digest.hexdigest() not in text and repr(digest.digest()) not in text


def test_a_short_key_is_refused():
    with pytest.raises(ValueError, match="at least 16 bytes"):
        find_production_credentials({"production": {}}, key=b"short")


def test_without_a_production_configuration_nothing_reads_as_clean():
    with pytest.raises(ValueError, match="no 'production' configuration") as error:
        find_production_credentials({"staging": {"DB_PASSWORD": WITNESS}}, key=KEY)
    assert WITNESS not in str(error.value)


def test_findings_are_immutable():
    [finding] = findings({"PROD_URL": "x"})
    with pytest.raises(ValueError):
        finding.environment = "production"  # type: ignore[misc]
