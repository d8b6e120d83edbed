-- A session advisory lock on the writing connection, in the package's lock space %(space)s (such as
-- 'thrive_sync.logins': one login check of an org at a time in a run; 'thrive_sync.day': one run of
-- a day syncing a category's part at a time). Released by advisory_unlock.sql or when the
-- connection ends, as it does when the task's process dies.
SELECT pg_advisory_lock(hashtext(%(space)s), hashtext(%(key)s));
