"""Which test worker a task ran on: the Celery workers of one machine share its hostname, so the
cluster (celery_cluster.py) names each with THRIVE_WORKER_NAME and points Airflow's
``hostname_callable`` here; ``task_instance.hostname`` then says which worker ran each task."""

from __future__ import annotations

import os
import socket


def name() -> str:
    return os.environ.get("THRIVE_WORKER_NAME") or socket.getfqdn()
