"""Chain keys for tests: fixed, so a failure reproduces; never used outside the suite."""

from __future__ import annotations

from integrations.chain_keys import ChainKey, ChainKeys

TEST_KEYS = ChainKeys([ChainKey("test-1", bytes(range(32)))])
OTHER_KEYS = ChainKeys([ChainKey("test-1", bytes(range(1, 33)))])
"""A key with the same id and another secret: what a forger without the key would use."""
