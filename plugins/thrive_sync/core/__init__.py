"""The rules, free of I/O: no airflow, psycopg or simple_salesforce import here (tests/unit/test_layers.py)."""
