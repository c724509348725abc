//! Every SQL text the runners send, kept together.
//!
//! Bookkeeping tables copy the shape of the tool each strategy reproduces,
//! so a rehearsal's leftovers look like what that tool leaves behind.

// --- naive: Django's `django_migrations` shape (id, name, applied), which
// has no unique constraint on the migration name: two racing replicas can
// both record the same migration. diesel and refinery create their tables
// the same way, with CREATE TABLE IF NOT EXISTS and no lock.
pub(crate) const NAIVE_TABLE: &str = "rehearse_naive_migrations";
pub(crate) const NAIVE_ENSURE: &str = "CREATE TABLE IF NOT EXISTS rehearse_naive_migrations (\
    id bigserial PRIMARY KEY, version text NOT NULL, description text NOT NULL, \
    applied timestamptz NOT NULL DEFAULT now())";
pub(crate) const NAIVE_APPLIED: &str = "SELECT version FROM rehearse_naive_migrations ORDER BY id";
pub(crate) const NAIVE_RECORD: &str =
    "INSERT INTO rehearse_naive_migrations (version, description) VALUES ($1, $2)";

// --- golang-migrate (postgres driver): one row, version plus dirty flag;
// SetVersion truncates and inserts in one transaction.
pub(crate) const GOLANG_TABLE: &str = "schema_migrations";
pub(crate) const GOLANG_ENSURE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (\
    version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)";
pub(crate) const GOLANG_CURRENT: &str = "SELECT version, dirty FROM schema_migrations LIMIT 1";
pub(crate) const GOLANG_TRUNCATE: &str = "TRUNCATE schema_migrations";
pub(crate) const GOLANG_SET: &str =
    "INSERT INTO schema_migrations (version, dirty) VALUES ($1, $2)";

// --- Flyway: flyway_schema_history, one row per attempt; a failed
// non-transactional migration leaves success = false until `repair`.
pub(crate) const FLYWAY_TABLE: &str = "flyway_schema_history";
pub(crate) const FLYWAY_ENSURE: &str = "CREATE TABLE IF NOT EXISTS flyway_schema_history (\
    installed_rank integer NOT NULL PRIMARY KEY, version varchar(50), \
    description varchar(200) NOT NULL, type varchar(20) NOT NULL, script varchar(1000) NOT NULL, \
    checksum integer, installed_by varchar(100) NOT NULL, \
    installed_on timestamp NOT NULL DEFAULT now(), execution_time integer NOT NULL, \
    success boolean NOT NULL)";
pub(crate) const FLYWAY_APPLIED: &str =
    "SELECT version, success FROM flyway_schema_history ORDER BY installed_rank";
pub(crate) const FLYWAY_RECORD: &str = "INSERT INTO flyway_schema_history (installed_rank, \
    version, description, type, script, checksum, installed_by, execution_time, success) \
    SELECT coalesce(max(installed_rank), 0) + 1, $1, $2, 'SQL', $3, NULL, current_user, $4, $5 \
    FROM flyway_schema_history";

// --- Rails: schema_migrations (version varchar primary key).
pub(crate) const RAILS_TABLE: &str = "ar_schema_migrations";
pub(crate) const RAILS_ENSURE: &str = "CREATE TABLE IF NOT EXISTS ar_schema_migrations (\
    version character varying NOT NULL PRIMARY KEY)";
pub(crate) const RAILS_APPLIED: &str = "SELECT version FROM ar_schema_migrations ORDER BY version";
pub(crate) const RAILS_RECORD: &str = "INSERT INTO ar_schema_migrations (version) VALUES ($1)";

// --- locks
pub(crate) const ADVISORY_LOCK: &str = "SELECT pg_advisory_lock($1)";
pub(crate) const ADVISORY_UNLOCK: &str = "SELECT pg_advisory_unlock($1)";
pub(crate) const ADVISORY_XACT_LOCK: &str = "SELECT pg_advisory_xact_lock($1)";
pub(crate) const ADVISORY_TRY_LOCK: &str = "SELECT pg_try_advisory_lock($1)";

pub(crate) const TABLE_EXISTS: &str = "SELECT to_regclass($1) IS NOT NULL";

// --- harness: finding and terminating replicas by application_name, in
// this database only (other rehearsals on the same server reuse the names).
pub(crate) const TERMINATE_BY_APP: &str = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
    WHERE application_name = $1 AND pid <> pg_backend_pid() AND datname = current_database()";
pub(crate) const COUNT_BY_APP: &str = "SELECT count(*) FROM pg_stat_activity \
    WHERE application_name = $1 AND pid <> pg_backend_pid() AND datname = current_database()";
/// Backends of replicas, the job and any user's tool in this database:
/// every client backend but the harness's own (`rehearse-harness`,
/// `rehearse-admin`, the sampler...), whose names start with `rehearse-`.
pub(crate) const COUNT_REPLICA_BACKENDS: &str = "SELECT count(*) FROM pg_stat_activity \
    WHERE datname = current_database() AND pid <> pg_backend_pid() \
    AND backend_type = 'client backend' \
    AND (application_name LIKE 'rehearse-replica-%' OR application_name = 'rehearse-job' \
    OR application_name NOT LIKE 'rehearse-%')";
pub(crate) const WAIT_EVENT_BY_APP: &str = "SELECT wait_event_type FROM pg_stat_activity \
    WHERE application_name = $1 AND state = 'active' AND pid <> pg_backend_pid() \
    AND datname = current_database()";

// --- the layouts' own tools' tables, as each tool creates and fills them
// (read in each tool's source; `ToolBook` in tool_book.rs). The harness
// writes them only for the baseline of a user's tool, so that the tool
// sees the baseline as already applied.
//
// sqlx (sqlx-postgres `migrate.rs`, `ensure_migrations_table`, `apply`):
// checksum is SHA-384 of the file, execution_time in nanoseconds.
pub(crate) const SQLX_TABLE: &str = "_sqlx_migrations";
pub(crate) const SQLX_ENSURE: &str = "CREATE TABLE IF NOT EXISTS _sqlx_migrations (\
    version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
    installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL, \
    checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL)";
pub(crate) const SQLX_RECORD: &str = "INSERT INTO _sqlx_migrations \
    (version, description, success, checksum, execution_time) VALUES ($1, $2, TRUE, $3, $4)";
pub(crate) const SQLX_APPLIED: &str =
    "SELECT version::text, success FROM _sqlx_migrations ORDER BY version";
// dbmate (pkg/driver/postgres `CreateMigrationsTable`, `InsertMigration`):
// the version string of the file name, nothing else.
pub(crate) const DBMATE_TABLE: &str = "schema_migrations";
pub(crate) const DBMATE_ENSURE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (\
    version character varying NOT NULL PRIMARY KEY)";
pub(crate) const DBMATE_RECORD: &str = "INSERT INTO schema_migrations (version) VALUES ($1)";
pub(crate) const DBMATE_APPLIED: &str = "SELECT version FROM schema_migrations ORDER BY version";
// diesel (diesel_migrations `CREATE_MIGRATIONS_TABLE`): the folder's
// timestamp without dashes.
pub(crate) const DIESEL_TABLE: &str = "__diesel_schema_migrations";
pub(crate) const DIESEL_ENSURE: &str = "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (\
    version VARCHAR(50) PRIMARY KEY NOT NULL, run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)";
pub(crate) const DIESEL_RECORD: &str =
    "INSERT INTO __diesel_schema_migrations (version) VALUES ($1)";
pub(crate) const DIESEL_APPLIED: &str =
    "SELECT version FROM __diesel_schema_migrations ORDER BY version";
// refinery (refinery_core `traits/mod.rs`): checksum is SipHash-1-3 of
// name, version and SQL, applied_on an RFC 3339 string.
pub(crate) const REFINERY_TABLE: &str = "refinery_schema_history";
pub(crate) const REFINERY_ENSURE: &str = "CREATE TABLE IF NOT EXISTS refinery_schema_history (\
    version INT4 PRIMARY KEY, name VARCHAR(255), applied_on VARCHAR(255), checksum VARCHAR(255))";
pub(crate) const REFINERY_RECORD: &str = "INSERT INTO refinery_schema_history \
    (version, name, applied_on, checksum) VALUES ($1, $2, $3, $4)";
pub(crate) const REFINERY_APPLIED: &str =
    "SELECT version::text FROM refinery_schema_history ORDER BY version";
// Flyway: the table above, with the CRC-32 checksum Flyway computes.
pub(crate) const FLYWAY_RECORD_CHECKSUM: &str = "INSERT INTO flyway_schema_history (\
    installed_rank, version, description, type, script, checksum, installed_by, execution_time, \
    success) SELECT coalesce(max(installed_rank), 0) + 1, $1, $2, 'SQL', $3, $4, current_user, \
    $5, true FROM flyway_schema_history";
