from __future__ import annotations

import pytest

from domain.security import path_matches, path_or_parent_matches, security_review_reasons
from tests.unit.conftest import make_change


@pytest.mark.parametrize(("pattern", "path", "expected"), [
    ("**/auth/**", "auth/login.py", True),            # ** matches zero directories
    ("**/auth/**", "src/auth/login.py", True),
    ("**/auth/**", "a/b/c/auth/x/y/z.py", True),      # ** crosses several directories
    ("**/auth/**", "src/oauth/login.py", False),      # a segment, not a substring
    ("**/auth/**", "src/auth", False),                # the directory itself has no child
    ("**/*.sql", "schema.sql", True),
    ("**/*.sql", "db/migrations/001_init.sql", True),
    ("**/*.sql", "db/schema.sql.bak", False),
    ("*.sql", "schema.sql", True),
    ("*.sql", "db/schema.sql", False),                # * does not cross '/' (fnmatch would)
    ("**/oauth*", "src/oauth_client.py", True),
    ("**/oauth*", "oauth.py", True),
    ("**/oauth*", "src/oauth/client.py", False),      # * stops at '/'
    ("src/**/test_?.py", "src/test_a.py", True),      # a/**/b matches a/b
    ("src/**/test_?.py", "src/x/y/test_b.py", True),
    ("src/**/test_?.py", "src/x/test_bc.py", False),  # ? is exactly one character
    ("config/**", "config/app/settings.yaml", True),
    ("config/**", "other/config/x.yaml", False),      # anchored at the start
    ("**/[ab].pem", "certs/a.pem", True),
    ("**/[!ab].pem", "certs/a.pem", False),
    ("**/[!ab].pem", "certs/c.pem", True),
    ("**/key.pem", "./certs/key.pem", True),          # leading ./ ignored
    ("**/key.pem", "certs\\key.pem", True),           # Windows separators
    ("a+b(c).txt", "a+b(c).txt", True),               # regex characters are literal
    ("a+b(c).txt", "aab(c).txt", False),
])
def test_path_matches(pattern, path, expected):
    assert path_matches(path, pattern) is expected


@pytest.mark.parametrize(("pattern", "path", "expected"), [
    ("**/oauth*", "src/oauth/client.py", True),       # the directory matches
    ("**/session*", "web/sessions/store.py", True),
    ("**/*.sql", "db/sql/x.py", False),
    ("**/auth/**", "src/auth/login.py", True),
])
def test_path_or_parent_matches(pattern, path, expected):
    assert path_or_parent_matches(path, pattern) is expected


@pytest.mark.parametrize(("overrides", "reasons"), [
    pytest.param({}, [], id="nothing-sensitive"),
    pytest.param({"labels": ["frontend"], "components": ["ui"],
                  "changed_paths": ["docs/auth.md", "src/authors.py"]}, [],
                 id="near-misses"),
    pytest.param({"labels": ["SSO"]}, ["authentication: label 'SSO' matched"],
                 id="label-case-insensitive"),
    pytest.param({"components": ["kms"]}, ["encryption: component 'kms' matched"],
                 id="component"),
    pytest.param({"changed_paths": ["services/api/auth/middleware.py"]},
                 ["authentication: path 'services/api/auth/middleware.py' matched pattern "
                  "'**/auth/**'"], id="path-double-star"),
    pytest.param({"changed_paths": ["db/migrations/0042_add_owner.sql"]},
                 ["data_access: path 'db/migrations/0042_add_owner.sql' matched pattern "
                  "'**/migrations/**'"], id="first-matching-pattern-only"),
    pytest.param({"changed_paths": ["schema.sql"]},
                 ["data_access: path 'schema.sql' matched pattern '**/*.sql'"],
                 id="top-level-file"),
    pytest.param({"changed_paths": ["src/oauth/provider.py"]},
                 ["authentication: path 'src/oauth/provider.py' matched pattern "
                  "'**/oauth*'"], id="directory-pattern"),
    pytest.param({"labels": ["tls"], "changed_paths": ["deploy/certs/site.pem",
                                                       "src/app.py"]},
                 ["encryption: label 'tls' matched",
                  "encryption: path 'deploy/certs/site.pem' matched pattern '**/*.pem'"],
                 id="label-and-path"),
    pytest.param({"labels": ["pii", "login"], "components": ["crypto"]},
                 ["authentication: label 'login' matched",
                  "data_access: label 'pii' matched",
                  "encryption: component 'crypto' matched"], id="several-areas-in-order"),
])
def test_security_review_reasons(policy, overrides, reasons):
    assert security_review_reasons(make_change(**overrides), policy) == reasons
