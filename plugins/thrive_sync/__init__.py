"""thrive-tracking-sync: push Higher Logic Thrive tracking into Salesforce once a day.

The package code lives under ``plugins/`` because Airflow puts that folder on ``sys.path``
for every scheduler, DAG processor and worker: the DAG file and its operators import
``thrive_sync`` without an install step on the workers.
"""
