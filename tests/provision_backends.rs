//! Every backend for real: start, query, DDL, clean up without leftovers;
//! many instances at once; template clones.
//!
//! Backend-specific tests fail under `CI=true` when their backend is
//! missing and skip loudly elsewhere.

use std::time::Duration;

use pg_rehearse::provision::{
    Backend, DEFAULT_MAX_CONNECTIONS, Postgres, ProvisionOptions, Resource,
};
use pg_rehearse::testing::{shared_server, start_or_skip};

fn options(backend: Backend) -> ProvisionOptions {
    ProvisionOptions::default().with_backend(backend)
}

/// The url backend needs a server to point at: a local cluster plays the
/// user's staging server.
async fn url_options() -> Option<(Postgres, ProvisionOptions)> {
    let server = start_or_skip(&options(Backend::Local)).await?;
    let url = server.conn().url_with_password();
    Some((server, options(Backend::Url).with_database_url(Some(url))))
}

/// Asserts that a handle's resources are gone after shutdown.
async fn assert_released(resources: &[Resource], admin: Option<&Postgres>) {
    for resource in resources {
        match resource {
            Resource::Directory(dir) => assert!(!dir.exists(), "{} was left behind", dir.display()),
            Resource::Process(pid) => {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                assert!(
                    stat.is_empty() || stat.contains(") Z "),
                    "postmaster {pid} still runs: {stat}"
                );
            }
            Resource::Container(id) => {
                let docker = bollard::Docker::connect_with_defaults().unwrap();
                let inspected = docker.inspect_container(id, None).await;
                assert!(inspected.is_err(), "container {id} was left behind");
            }
            Resource::Database(name) => {
                let admin = admin.expect("url resources are checked on their server");
                let client = admin.conn().connect("check").await.unwrap();
                let row = client
                    .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[name])
                    .await
                    .unwrap();
                assert!(row.is_none(), "database {name} was left behind");
            }
        }
    }
}

/// start, `SELECT version()`, `max_connections`, DDL, shutdown, nothing
/// left.
async fn lifecycle(postgres: Postgres, admin: Option<&Postgres>, max_connections: u32) {
    let resources = postgres.resources();
    assert!(!resources.is_empty(), "a running instance owns something");
    assert_eq!(
        postgres.conn().host,
        "127.0.0.1",
        "connect through loopback only"
    );
    let client = postgres.conn().connect("lifecycle").await.unwrap();
    let version: String = client
        .query_one("SELECT version()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(version.starts_with("PostgreSQL "), "{version}");
    assert!(
        version.contains(postgres.version().split(' ').next().unwrap()),
        "{version}"
    );
    let max: String = client
        .query_one("SHOW max_connections", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(max, max_connections.to_string(), "max_connections");
    client
        .batch_execute(
            "CREATE TABLE t (id bigint PRIMARY KEY, note text NOT NULL); \
             INSERT INTO t SELECT g, 'n' || g FROM generate_series(1, 100) g; \
             ALTER TABLE t ADD COLUMN extra int; DROP TABLE t;",
        )
        .await
        .unwrap();
    drop(client);
    // The harness's own observers (the lock sampler) take the cluster's unix
    // socket when this process started the server, and TCP otherwise.
    let nearby = postgres.conn().connect_nearby("nearby").await.unwrap();
    let over_tcp: bool = nearby
        .query_one("SELECT inet_client_addr() IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(over_tcp, postgres.backend() != Backend::Local);
    drop(nearby);
    postgres.shutdown().await.unwrap();
    assert_released(&resources, admin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_backend_lifecycle() {
    // Sized as asked: every pg_locks read walks tables sized by it.
    let Some(postgres) = start_or_skip(&options(Backend::Local).with_max_connections(120)).await
    else {
        return;
    };
    assert_eq!(postgres.backend(), Backend::Local);
    assert!(matches!(postgres.resources()[0], Resource::Directory(_)));
    lifecycle(postgres, None, 120).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_backend_lifecycle() {
    let Some(postgres) = start_or_skip(&options(Backend::Docker)).await else {
        return;
    };
    assert_eq!(postgres.backend(), Backend::Docker);
    lifecycle(postgres, None, DEFAULT_MAX_CONNECTIONS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_backend_lifecycle_touches_only_its_own_database() {
    let Some((server, options)) = url_options().await else {
        return;
    };
    let admin = server.conn().connect("check").await.unwrap();
    let before: i64 = admin
        .query_one("SELECT count(*) FROM pg_database", &[])
        .await
        .unwrap()
        .get(0);
    // A server the user names keeps its own max_connections.
    let postgres = Postgres::start(&options.with_max_connections(120))
        .await
        .unwrap();
    assert_eq!(postgres.backend(), Backend::Url);
    assert!(
        postgres.conn().dbname.starts_with("rehearse_"),
        "{}",
        postgres.conn().dbname
    );
    lifecycle(postgres, Some(&server), DEFAULT_MAX_CONNECTIONS).await;
    let after: i64 = admin
        .query_one("SELECT count(*) FROM pg_database", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        before, after,
        "the url backend left a database behind or dropped one"
    );
    server.shutdown().await.unwrap();
}

/// Sixteen instances started at once each see only their own marker row.
async fn concurrent_instances_are_isolated(
    options: ProvisionOptions,
    count: usize,
    admin: Option<&Postgres>,
) {
    let starts = (0..count).map(|_| Postgres::start(&options));
    let started = futures_util::future::join_all(starts).await;
    let mut instances = Vec::new();
    for result in started {
        match result {
            Ok(postgres) => instances.push(postgres),
            Err(e) => panic!("starting one of {count} concurrent instances: {e}"),
        }
    }
    for (i, postgres) in instances.iter().enumerate() {
        let client = postgres.conn().connect("marker").await.unwrap();
        client
            .batch_execute(&format!(
                "CREATE TABLE marker (who int); INSERT INTO marker VALUES ({i})"
            ))
            .await
            .unwrap();
    }
    for (i, postgres) in instances.iter().enumerate() {
        let client = postgres.conn().connect("marker").await.unwrap();
        let rows = client.query("SELECT who FROM marker", &[]).await.unwrap();
        let seen: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(
            seen,
            vec![i32::try_from(i).unwrap()],
            "instance {i} saw {seen:?}"
        );
    }
    let mut resources = Vec::new();
    for postgres in instances {
        resources.extend(postgres.resources());
        postgres.shutdown().await.unwrap();
    }
    assert_released(&resources, admin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_local_instances_at_once() {
    // Probe first so a machine without binaries skips loudly (or fails in CI).
    let Some(probe) = start_or_skip(&options(Backend::Local)).await else {
        return;
    };
    probe.shutdown().await.unwrap();
    concurrent_instances_are_isolated(options(Backend::Local), 16, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_docker_instances_at_once() {
    let Some(probe) = start_or_skip(&options(Backend::Docker)).await else {
        return;
    };
    probe.shutdown().await.unwrap();
    concurrent_instances_are_isolated(
        options(Backend::Docker).with_startup_timeout(Duration::from_secs(120)),
        16,
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_url_databases_at_once() {
    let Some((server, options)) = url_options().await else {
        return;
    };
    concurrent_instances_are_isolated(options, 16, Some(&server)).await;
    server.shutdown().await.unwrap();
}

/// A clone has the template's data, and changes on either side stay there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_clones_are_identical_and_independent() {
    let Some(server) = shared_server() else {
        return;
    };
    let key = format!("clone-test-{:x}", rand::random::<u32>());
    let template = server
        .template(&key, |conn| async move {
            let client = conn.connect("prepare").await.map_err(|e| e.to_string())?;
            client
                .batch_execute(
                    "CREATE TABLE items (id int PRIMARY KEY, name text); \
                     INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 1000) g;",
                )
                .await
                .map_err(|e| e.to_string())
        })
        .await
        .unwrap();
    assert!(template.built);
    let again = server
        .template(&key, |_| async {
            Err::<(), String>("must not rebuild".into())
        })
        .await
        .unwrap();
    assert!(!again.built, "the second request reuses the template");

    let a = server.clone_database(&template, None).await.unwrap();
    let b = server.clone_database(&template, None).await.unwrap();
    let (a, b) = (a.connect("a").await.unwrap(), b.connect("b").await.unwrap());
    let checksum =
        "SELECT count(*)::text || ':' || md5(string_agg(name, ',' ORDER BY id)) FROM items";
    let sum_a: String = a.query_one(checksum, &[]).await.unwrap().get(0);
    let sum_b: String = b.query_one(checksum, &[]).await.unwrap().get(0);
    assert_eq!(sum_a, sum_b);
    assert!(sum_a.starts_with("1000:"), "{sum_a}");

    a.batch_execute("DELETE FROM items WHERE id <= 500; ALTER TABLE items ADD COLUMN x int")
        .await
        .unwrap();
    let after_b: String = b.query_one(checksum, &[]).await.unwrap().get(0);
    assert_eq!(after_b, sum_b, "a change in one clone leaked into another");
    let c = server.clone_database(&template, None).await.unwrap();
    let c = c.connect("c").await.unwrap();
    let sum_c: String = c.query_one(checksum, &[]).await.unwrap().get(0);
    assert_eq!(sum_c, sum_b, "a change in a clone leaked into the template");
}
