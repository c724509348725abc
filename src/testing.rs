//! Support for `cargo test`: throwaway databases for tests.
//!
//! STUB until provisioning lands: uses `REHEARSE_TEST_DATABASE_URL`.

use crate::provision::ConnInfo;

/// A fresh database for one test, dropped when the value is dropped.
pub struct TestDatabase {
    conn: ConnInfo,
}

impl TestDatabase {
    /// Connection settings of this database.
    #[must_use]
    pub fn conn(&self) -> &ConnInfo {
        &self.conn
    }

    /// A new connection to this database.
    pub async fn connect(&self) -> tokio_postgres::Client {
        self.conn
            .connect("rehearse-test")
            .await
            .expect("connect to test database")
    }
}

/// A fresh, empty database for one test; `None` (after a loud message) when no
/// backend is available outside CI. Under `CI=true` a missing backend panics.
pub async fn fresh_database() -> Option<TestDatabase> {
    let url = std::env::var("REHEARSE_TEST_DATABASE_URL").ok()?;
    let config: tokio_postgres::Config = url.parse().ok()?;
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
    };
    let base = ConnInfo::new(host, config.get_ports()[0], config.get_user()?).with_password(
        config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
    );
    let admin = base.connect("rehearse-test").await.ok()?;
    let name = format!("t_{:016x}", rand::random::<u64>());
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .ok()?;
    Some(TestDatabase {
        conn: base.with_dbname(name),
    })
}
