"""Local development services and sample data for thrive-tracking-sync (not deployed to Airflow)."""
