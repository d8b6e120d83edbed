"""A local Salesforce stand-in that speaks the real wire protocol over TLS on 127.0.0.1.

No Salesforce org is reachable from development and CI machines, so the package is built and
tested against this server with the real simple_salesforce client. It validates records against
the very metadata the package ships for admins (``include/salesforce/``), plus standard Contact
and Lead. Development and test tooling only: never deployed with the DAGs.
"""
