//! `sslmode` and other libpq parameters of a `--database-url` are honoured,
//! against a real server: a local cluster, first without TLS, then with a
//! certificate made here by a test CA.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use pg_rehearse::provision::{Backend, ConnInfo, Postgres, ProvisionOptions, parse_database_url};

const BIN: &str = env!("CARGO_BIN_EXE_rehearse");

/// A CA, and a server certificate for `localhost` it signed.
struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn make_pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "rehearse test ca");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca_cert, &ca_key)
        .unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// Writes a file the server (running as `postgres` when we are root) can
/// read; the key must be private to its owner (Postgres refuses it
/// otherwise).
fn write_for_server(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    if nix::unistd::geteuid().is_root()
        && let Ok(Some(user)) = nix::unistd::User::from_name("postgres")
    {
        nix::unistd::chown(path, Some(user.uid), Some(user.gid)).unwrap();
    }
}

async fn ssl_in_use(conn: &ConnInfo) -> bool {
    let client = conn.connect("tls-test").await.unwrap();
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

fn with_query(server: &Postgres, host: &str, query: &str) -> String {
    let base = server.conn().url_with_password();
    format!("{}?{query}", base.replacen("127.0.0.1", host, 1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_is_honoured_against_a_real_server() {
    let Some(server) = pg_rehearse::testing::start_or_skip(
        &ProvisionOptions::default().with_backend(Backend::Local),
    )
    .await
    else {
        return;
    };

    // 1. No TLS on the server: require fails clearly, in bounded time, in
    //    the library and in the CLI (exit 3, one line, no password).
    let require = with_query(&server, "127.0.0.1", "sslmode=require");
    let error = parse_database_url(&require)
        .unwrap()
        .connect("tls-test")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("TLS") && error.contains("sslmode=require"),
        "{error}"
    );
    let output = std::process::Command::new(BIN)
        // The user's template cache is not the tests' to read or fill.
        .env("REHEARSE_NO_CACHE", "1")
        .args(["provision", "--backend", "url", "--database-url", &require])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("does not support TLS"), "{stderr}");
    if let Some(password) = server.conn().password() {
        assert!(!stderr.contains(password), "{stderr}");
    }
    // prefer (libpq's default) falls back to plaintext.
    let prefer = parse_database_url(&with_query(&server, "127.0.0.1", "sslmode=prefer")).unwrap();
    assert!(!ssl_in_use(&prefer).await);

    // 2. Turn TLS on (ssl is reloadable: manual, "Secure TCP/IP
    //    Connections with SSL").
    let dir = tempfile::tempdir_in("/tmp").unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let pki = make_pki();
    let other_ca = make_pki();
    let (cert, key, ca, wrong_ca) = (
        dir.path().join("server.crt"),
        dir.path().join("server.key"),
        dir.path().join("ca.pem"),
        dir.path().join("wrong-ca.pem"),
    );
    write_for_server(&cert, &pki.cert_pem, 0o644);
    write_for_server(&key, &pki.key_pem, 0o600);
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    std::fs::write(&wrong_ca, &other_ca.ca_pem).unwrap();
    let admin = server.conn().connect("tls-test").await.unwrap();
    for sql in [
        format!("ALTER SYSTEM SET ssl_cert_file = '{}'", cert.display()),
        format!("ALTER SYSTEM SET ssl_key_file = '{}'", key.display()),
        "ALTER SYSTEM SET ssl = on".to_string(),
        "SELECT pg_reload_conf()".to_string(),
    ] {
        admin.batch_execute(&sql).await.unwrap();
    }
    let require = parse_database_url(&require).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while require.connect("tls-test").await.is_err() {
        assert!(Instant::now() < deadline, "the server never offered TLS");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ssl_in_use(&require).await, "require must encrypt");
    assert!(
        ssl_in_use(&prefer).await,
        "prefer must encrypt when offered"
    );
    let disable = parse_database_url(&with_query(&server, "127.0.0.1", "sslmode=disable")).unwrap();
    assert!(!ssl_in_use(&disable).await, "disable must not encrypt");

    // 3. Verification: the right CA and host pass; a wrong CA, or a host
    //    the certificate does not name under verify-full, fail clearly.
    let ca_arg = format!("sslrootcert={}", ca.display());
    let full = |host: &str, root: &str| {
        parse_database_url(&with_query(
            &server,
            host,
            &format!("sslmode=verify-full&{root}"),
        ))
        .unwrap()
    };
    assert!(ssl_in_use(&full("localhost", &ca_arg)).await);
    let wrong = format!("sslrootcert={}", wrong_ca.display());
    let error = full("localhost", &wrong)
        .connect("tls-test")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("certificate") && error.contains("sslmode=verify-full"),
        "{error}"
    );
    let error = full("127.0.0.1", &ca_arg)
        .connect("tls-test")
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("certificate"), "{error}");
    let verify_ca = parse_database_url(&with_query(
        &server,
        "127.0.0.1",
        &format!("sslmode=verify-ca&{ca_arg}"),
    ))
    .unwrap();
    assert!(
        ssl_in_use(&verify_ca).await,
        "verify-ca ignores the host name"
    );

    // 4. Other parameters reach the server.
    let tuned = parse_database_url(&with_query(
        &server,
        "127.0.0.1",
        "sslmode=require&options=-c%20statement_timeout%3D4321&application_name=deploy-bot",
    ))
    .unwrap();
    let client = tuned.connect("rehearse-x").await.unwrap();
    let row = client
        .query_one(
            "SELECT current_setting('statement_timeout'), current_setting('application_name')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "4321ms");
    assert_eq!(row.get::<_, String>(1), "rehearse-x deploy-bot");
    drop(client);
    drop(admin);
    server.shutdown().await.unwrap();
}
