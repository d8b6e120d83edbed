-- Name this session in pg_stat_activity (application_name), for as long as it lasts: a DBA (and the
-- reliability test) can tell a validate task's reading connection from the rest.
SELECT set_config('application_name', %(name)s, false);
