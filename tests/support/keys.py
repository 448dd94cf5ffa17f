"""Chain keys for tests: fixed, so a failure reproduces; never used outside the suite."""

from __future__ import annotations

import base64

from integrations.chain_keys import ChainKeys

TEST_KEY_TEXT = f"test-1:{base64.b64encode(bytes(range(32))).decode()}"
"""The key as `CHANGEFLOW_CHAIN_KEY` takes it, for a command run as a subprocess."""
TEST_KEYS = ChainKeys.parse(TEST_KEY_TEXT, "tests")
OTHER_KEYS = ChainKeys.parse(f"test-1:{base64.b64encode(bytes(range(1, 33))).decode()}",
                             "tests")
"""A key with the same id and another secret: what a forger without the key would use."""
