SELECT pg_advisory_unlock(hashtext(%(space)s), hashtext(%(key)s));
