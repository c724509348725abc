//! The Docker image's first-start contract, checked on the image the Docker
//! backend uses (`$REHEARSE_DOCKER_IMAGE` or the pinned official tag).
//!
//! The offline image from `ci/build-postgres-image.sh` has two first-start
//! paths: unpacking a cluster prebuilt for the default superuser, locale and
//! time zone, or running initdb for anything else. Both must end in the
//! state the official image's initdb path leaves, so these tests start one
//! container on each path and compare what a client can see. On the
//! official image both paths are initdb, and the tests hold just the same.
//!
//! Containers publish on 127.0.0.1 only, carry the harness's labels (so
//! `rehearse gc` reclaims them if this process is killed) and are removed
//! when the test ends, passing or not.

use std::process::Command;
use std::time::{Duration, Instant};

use pg_rehearse::provision::{Backend, ConnInfo, DockerImage, ProvisionOptions};
use pg_rehearse::testing::start_or_skip;

/// Quotes, a backslash, a space and a percent sign: the password must reach
/// the server intact on every path, and appear in no log.
const CANARY: &str = r#"c4n'ary\ "pw% 7f3e"#;
const DATABASE: &str = "app";

struct Container {
    id: String,
    port: u16,
    user: String,
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &self.id])
            .output();
    }
}

impl Container {
    /// `docker run` of the backend's image with these extra `-e`/`-v`
    /// arguments and the harness's speed settings.
    fn start(image: &str, user: &str, extra: &[String]) -> Container {
        let owner = format!(
            r#"{{"pid":{},"start_ticks":0,"run_id":"image-contract"}}"#,
            std::process::id()
        );
        let mut args: Vec<String> = [
            "run",
            "-d",
            "-p",
            "127.0.0.1::5432",
            "--tmpfs",
            "/var/lib/postgresql/rehearse-data:rw,mode=0700",
            "-e",
            "PGDATA=/var/lib/postgresql/rehearse-data",
            "--label",
            "dev.rehearse.managed=true",
            "--label",
        ]
        .map(String::from)
        .into();
        args.push(format!("dev.rehearse.owner={owner}"));
        args.push("--label".into());
        args.push(format!(
            "dev.rehearse.host={}",
            nix::unistd::gethostname().unwrap().to_string_lossy()
        ));
        args.extend(["-e".into(), format!("POSTGRES_PASSWORD={CANARY}")]);
        args.extend(["-e".into(), format!("POSTGRES_DB={DATABASE}")]);
        args.extend(["-e".into(), format!("POSTGRES_USER={user}")]);
        args.extend(extra.iter().cloned());
        args.extend([image.to_string(), "-c".into(), "fsync=off".into()]);
        let out = Command::new("docker").args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "docker run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
        // Owned from here: a failing assertion below still removes it.
        let mut container = Container {
            id,
            port: 0,
            user: user.to_string(),
        };
        let out = Command::new("docker")
            .args(["port", &container.id, "5432/tcp"])
            .output()
            .unwrap();
        let published = String::from_utf8(out.stdout).unwrap();
        let first = published.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("127.0.0.1:"),
            "port published on {first:?}, not on 127.0.0.1 only"
        );
        container.port = first.rsplit(':').next().unwrap().parse().unwrap();
        container
    }

    fn conn(&self, password: &str) -> ConnInfo {
        ConnInfo::new("127.0.0.1", self.port, &self.user)
            .with_password(Some(password.to_string()))
            .with_dbname(DATABASE)
    }

    /// Connects with the canary password, polling until the server answers
    /// (30 s deadline).
    async fn client(&self) -> tokio_postgres::Client {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.conn(CANARY).connect("image-contract").await {
                Ok(client) => return client,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("{} never answered: {e}\n{}", self.id, self.logs()),
            }
        }
    }

    fn logs(&self) -> String {
        let out = Command::new("docker")
            .args(["logs", &self.id])
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

/// Everything about the new cluster a client can compare: who it is, the
/// databases, the settings initdb wrote, pg_hba.conf and the password's
/// storage format.
async fn state(client: &tokio_postgres::Client) -> Vec<String> {
    let mut out = Vec::new();
    let who = client
        .query_one(
            "SELECT current_user::text, current_database()::text, \
                    (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), \
                    (SELECT left(rolpassword, 14) FROM pg_authid WHERE rolname = current_user)",
            &[],
        )
        .await
        .unwrap();
    out.push(format!(
        "super={} db={} password={:?}",
        who.get::<_, bool>(2),
        who.get::<_, String>(1),
        who.get::<_, Option<String>>(3)
    ));
    for row in client
        .query(
            "SELECT datname::text || ' ' || pg_encoding_to_char(encoding) || ' ' || datcollate \
               FROM pg_database ORDER BY datname",
            &[],
        )
        .await
        .unwrap()
    {
        out.push(row.get(0));
    }
    // The settings initdb wrote to postgresql.conf (not our -c arguments).
    for row in client
        .query(
            "SELECT name || '=' || setting FROM pg_settings \
              WHERE source = 'configuration file' ORDER BY name",
            &[],
        )
        .await
        .unwrap()
    {
        out.push(row.get(0));
    }
    let hba: String = client
        .query_one("SELECT pg_read_file('pg_hba.conf')", &[])
        .await
        .unwrap()
        .get(0);
    out.push(hba);
    out
}

/// The Docker backend's image, after checking Docker works here (a loud
/// skip, or a failure under CI, when it does not).
async fn image_or_skip() -> Option<String> {
    let options = ProvisionOptions::default().with_backend(Backend::Docker);
    let probe = start_or_skip(&options).await?;
    probe.shutdown().await.unwrap();
    Some(DockerImage::resolve(&options).unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prebuilt_and_initdb_first_starts_end_in_the_same_state() {
    let Some(image) = image_or_skip().await else {
        return;
    };
    // The default superuser may take the prebuilt cluster; another one
    // always runs initdb.
    let prebuilt = Container::start(&image, "postgres", &[]);
    let initdb = Container::start(&image, "alice", &[]);

    let a = state(&prebuilt.client().await).await;
    let b = state(&initdb.client().await).await;
    assert_eq!(
        a[0], "super=true db=app password=Some(\"SCRAM-SHA-256$\")",
        "{a:?}"
    );
    assert_eq!(a, b, "the two first-start paths differ");

    for container in [&prebuilt, &initdb] {
        let wrong = container.conn("not-the-password");
        assert!(
            wrong.connect("image-contract").await.is_err(),
            "{}: a wrong password was accepted",
            container.user
        );
        let logs = container.logs();
        assert!(
            !logs.contains(CANARY) && !logs.contains("c4n"),
            "{}: the password is in the container's log:\n{logs}",
            container.user
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_scripts_run_on_the_default_first_start() {
    let Some(image) = image_or_skip().await else {
        return;
    };
    let scripts = tempfile::tempdir().unwrap();
    std::fs::write(
        scripts.path().join("10-marker.sql"),
        "CREATE TABLE marker (note text); INSERT INTO marker VALUES ('from init script');",
    )
    .unwrap();
    // Readable by the container's postgres user.
    std::fs::set_permissions(
        scripts.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mount = format!(
        "{}:/docker-entrypoint-initdb.d:ro",
        scripts.path().display()
    );
    let container = Container::start(&image, "postgres", &["-v".into(), mount]);
    let client = container.client().await;
    let note: String = client
        .query_one("SELECT note FROM marker", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(note, "from init script");
    // Scripts ran before the server listened on TCP: the marker was there
    // at the first successful connection, and the log says the setup ended.
    assert!(
        container
            .logs()
            .contains("PostgreSQL init process complete"),
        "{}",
        container.logs()
    );
}
