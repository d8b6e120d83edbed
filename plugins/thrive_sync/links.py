"""The "Tracking log" button on each validate-and-map task: the plugin page, filtered to its run and category."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode

from airflow.configuration import conf
from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.models.taskinstancekey import TaskInstanceKey
    from airflow.sdk import BaseOperator

UI_PREFIX = "/thrive-sync"  # where the plugin mounts its app (thrive_sync_plugin.py)


class TrackingLogLink(BaseOperatorLink):
    """Worked out by the worker when the task ends and kept in XCom, as Airflow 3 does for every link."""

    name = "Tracking log"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        base = conf.get("api", "base_url", fallback="").rstrip("/")
        category = getattr(operator, "category", None) or ti_key.task_id.removeprefix("validate_and_map_")
        return f"{base}{UI_PREFIX}/?{urlencode({'run_id': ti_key.run_id, 'category': category})}"
