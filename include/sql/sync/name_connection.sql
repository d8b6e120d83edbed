-- Name this session in pg_stat_activity (application_name), for as long as it lasts: a DBA (and the
-- reliability tests) can tell a validate task's reading and writing connections, and its category.
SELECT set_config('application_name', %(name)s, false);
