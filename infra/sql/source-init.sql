-- Accounts on the SOURCE server. One file serves both set-ups:
--   * compose.yaml mounts it into the mariadb image's /docker-entrypoint-initdb.d,
--     which runs it once with the fallback names below;
--   * infra/mariadb.sh runs it on every start, after setting the @variables from
--     infra/defaults.sh, so it must stay idempotent.
-- Names and passwords are spliced in with QUOTE() through EXECUTE IMMEDIATE
-- because account names cannot be bound as parameters.

SET @source_admin_user = COALESCE(@source_admin_user, 'source_admin');
SET @source_admin_pass = COALESCE(@source_admin_pass, 'source_admin_pw');
SET @link_user = COALESCE(@link_user, 'djlink');
SET @link_pass = COALESCE(@link_pass, 'djlink_pw');

-- The source lab's operator: owns the pipeline and creates the source tables.
SET @account = CONCAT(QUOTE(@source_admin_user), '@''%''');
EXECUTE IMMEDIATE CONCAT('CREATE USER IF NOT EXISTS ', @account,
                         ' IDENTIFIED BY ', QUOTE(@source_admin_pass));
EXECUTE IMMEDIATE CONCAT('ALTER USER ', @account,
                         ' IDENTIFIED BY ', QUOTE(@source_admin_pass));
EXECUTE IMMEDIATE CONCAT('GRANT ALL PRIVILEGES ON *.* TO ', @account,
                         ' WITH GRANT OPTION');

-- The link's account: reads source schemas (src_*) and owns its helper schemas
-- (helper_*), nothing else. Privileges are revoked first so a re-run leaves
-- exactly these two grants, whatever was granted by hand in between.
SET @account = CONCAT(QUOTE(@link_user), '@''%''');
EXECUTE IMMEDIATE CONCAT('CREATE USER IF NOT EXISTS ', @account,
                         ' IDENTIFIED BY ', QUOTE(@link_pass));
EXECUTE IMMEDIATE CONCAT('ALTER USER ', @account, ' IDENTIFIED BY ', QUOTE(@link_pass));
EXECUTE IMMEDIATE CONCAT('REVOKE ALL PRIVILEGES, GRANT OPTION FROM ', @account);
-- '\\_' is an escaped underscore: `src\_%` matches names starting with "src_".
EXECUTE IMMEDIATE CONCAT('GRANT SELECT, REFERENCES ON `src\\_%`.* TO ', @account);
EXECUTE IMMEDIATE CONCAT('GRANT ALL PRIVILEGES ON `helper\\_%`.* TO ', @account);
