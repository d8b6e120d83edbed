"""Airflow plugin: the Thrive tracking-log page, its entry in the UI's menu, and the task button.

The page is a FastAPI app (``thrive_sync.ui``) mounted by the API server at ``/thrive-sync``; the
external view puts it in the UI's navigation; ``TrackingLogLink`` is registered so the UI can show
the button that the worker stored for each validate-and-map task.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from thrive_sync.links import UI_PREFIX, TrackingLogLink
from thrive_sync.ui import create_app


class ThriveSyncPlugin(AirflowPlugin):
    name = "thrive_sync"
    fastapi_apps = [{"app": create_app(), "url_prefix": UI_PREFIX, "name": "Thrive tracking log"}]
    external_views = [
        {
            "name": "Thrive tracking log",
            "href": UI_PREFIX.lstrip("/") + "/",
            "destination": "nav",
            "category": "browse",
            "url_route": "thrive-tracking-log",
        }
    ]
    operator_extra_links = [TrackingLogLink()]
