"""Deployment settings from the environment: defaults, values, and mistakes named."""

from __future__ import annotations

import pytest

from thrive_sync.errors import ConfigurationError
from thrive_sync.settings import Deployment, WriterOptions


def test_defaults_and_values():
    assert Deployment.from_environ({}) == Deployment()
    env = {
        "THRIVE_SYNC_TIMEZONE": "America/New_York",
        "THRIVE_SYNC_DELAY_MINUTES": "30",
        "THRIVE_SYNC_RETRY_DELAY_SECONDS": "1.5",
        "THRIVE_SYNC_MAPPING": "/m.yaml",
        "THRIVE_SYNC_BULK_THRESHOLD": "1",
        "THRIVE_SYNC_BULK_JOB_ROWS": "1500",
        "THRIVE_SYNC_POLL_SECONDS": "0.5",
        "THRIVE_SYNC_JOB_TIMEOUT_SECONDS": "90",
        "THRIVE_SYNC_GROUP_BY_PARENT": "Off",
    }
    assert Deployment.from_environ(env) == Deployment(
        "America/New_York", 30, 1.5, "/m.yaml", 1, 1500, 0.5, 90.0, group_by_parent=False
    )
    assert Deployment.from_environ({"THRIVE_SYNC_GROUP_BY_PARENT": "1"}).group_by_parent is True


def test_the_writer_defaults_are_the_deployment_defaults():
    """Unset, the Bulk job settings are the writer's own defaults: a deployment that sets none changes nothing."""
    deployment = Deployment.from_environ({})
    options = WriterOptions()
    assert (deployment.bulk_threshold, deployment.bulk_job_rows) == (options.bulk_threshold, options.bulk_job_rows)
    assert (deployment.poll_seconds, deployment.job_timeout_seconds) == (
        options.poll_seconds,
        options.job_timeout_seconds,
    )
    assert deployment.group_by_parent is options.group_by_parent is True


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("THRIVE_SYNC_DELAY_MINUTES", "2h", "THRIVE_SYNC_DELAY_MINUTES='2h' is not an integer"),
        ("THRIVE_SYNC_RETRY_DELAY_SECONDS", "soon", "is not a number"),
        ("THRIVE_SYNC_BULK_THRESHOLD", "-5", "must not be negative"),
        ("THRIVE_SYNC_BULK_JOB_ROWS", "0", "THRIVE_SYNC_BULK_JOB_ROWS='0' must be more than 0"),
        ("THRIVE_SYNC_BULK_JOB_ROWS", "2.5", "is not an integer"),
        ("THRIVE_SYNC_POLL_SECONDS", "0", "must be more than 0"),
        ("THRIVE_SYNC_POLL_SECONDS", "nan", "is not a finite number"),
        ("THRIVE_SYNC_JOB_TIMEOUT_SECONDS", "-1", "must be more than 0"),
        ("THRIVE_SYNC_JOB_TIMEOUT_SECONDS", "inf", "is not a finite number"),
        ("THRIVE_SYNC_GROUP_BY_PARENT", "maybe", "THRIVE_SYNC_GROUP_BY_PARENT='maybe' is not one of 0, 1, false"),
        ("THRIVE_SYNC_DEADLINE", "6am", "THRIVE_SYNC_DEADLINE: '6am' is not a time of day HH:MM or HH:MM:SS"),
        ("THRIVE_SYNC_DEADLINE", "24:00", "is not a time of day"),
    ],
)
def test_a_value_that_cannot_be_used_names_the_variable(name, value, message):
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(")):
        Deployment.from_environ({name: value})
