-- advisory_lock.sql without waiting: true when the lock was free and is now held.
SELECT pg_try_advisory_lock(hashtext(%(space)s), hashtext(%(key)s));
