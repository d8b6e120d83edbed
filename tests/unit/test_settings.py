"""Deployment settings from the environment: defaults, values, and mistakes named."""

from __future__ import annotations

import pytest

from thrive_sync.errors import ConfigurationError
from thrive_sync.settings import Deployment


def test_defaults_and_values():
    assert Deployment.from_environ({}) == Deployment()
    env = {
        "THRIVE_SYNC_TIMEZONE": "America/New_York",
        "THRIVE_SYNC_DELAY_MINUTES": "30",
        "THRIVE_SYNC_RETRY_DELAY_SECONDS": "1.5",
        "THRIVE_SYNC_MAPPING": "/m.yaml",
        "THRIVE_SYNC_BULK_THRESHOLD": "1",
    }
    assert Deployment.from_environ(env) == Deployment("America/New_York", 30, 1.5, "/m.yaml", 1)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("THRIVE_SYNC_DELAY_MINUTES", "2h", "THRIVE_SYNC_DELAY_MINUTES='2h' is not an integer"),
        ("THRIVE_SYNC_RETRY_DELAY_SECONDS", "soon", "is not a number"),
        ("THRIVE_SYNC_BULK_THRESHOLD", "-5", "must not be negative"),
    ],
)
def test_a_value_that_cannot_be_used_names_the_variable(name, value, message):
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(")):
        Deployment.from_environ({name: value})
