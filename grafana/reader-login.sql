-- Grafana's database login for `docker compose up`: the role `grafana`, a member of the
-- read-only role cdrflow_reader (migrations/V12__grafana_reader.sql), with the password
-- of the grafana_db_password secret. docker-compose.yml's grafana-login job runs it with
-- psql after the migrations; running it again sets the same password again. The password
-- is read by psql from the secret file, so it is on no command line.
\set ON_ERROR_STOP on
\set password `cat /run/secrets/grafana_db_password`
SELECT 'CREATE ROLE grafana LOGIN IN ROLE cdrflow_reader'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'grafana')
\gexec
ALTER ROLE grafana WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT PASSWORD :'password';
GRANT cdrflow_reader TO grafana;
