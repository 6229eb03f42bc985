-- Accounts on the DESTINATION server. Used like source-init.sql: run once by the
-- mariadb image (compose.yaml) with the fallbacks below, and on every start by
-- infra/mariadb.sh with @variables from infra/defaults.sh; idempotent.

SET @dj_user = COALESCE(@dj_user, 'djuser');
SET @dj_pass = COALESCE(@dj_pass, 'djuser_pw');

-- The destination lab's own account, used by its DataJoint code and the services.
SET @account = CONCAT(QUOTE(@dj_user), '@''%''');
EXECUTE IMMEDIATE CONCAT('CREATE USER IF NOT EXISTS ', @account,
                         ' IDENTIFIED BY ', QUOTE(@dj_pass));
EXECUTE IMMEDIATE CONCAT('ALTER USER ', @account, ' IDENTIFIED BY ', QUOTE(@dj_pass));
EXECUTE IMMEDIATE CONCAT('GRANT ALL PRIVILEGES ON *.* TO ', @account);
