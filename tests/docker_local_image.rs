//! The Docker backend runs the locally built `rehearse-postgres:<major>`
//! (from `ci/build-postgres-image.sh`) when the daemon has it, with no
//! setting, before it would pull the official tag; an explicit image still
//! wins. Needs Docker and the built image: a loud skip without them, a
//! failure under CI.

use pg_rehearse::provision::{Backend, DOCKER_IMAGE_ENV, DockerImage, Postgres, ProvisionOptions};
use pg_rehearse::testing::skip;

const LOCAL: &str = "rehearse-postgres:15";

#[test]
fn the_docker_backend_prefers_the_locally_built_image() {
    // SAFETY: the only test of this binary, before any thread starts: the
    // choice must not depend on the caller's environment.
    unsafe { std::env::remove_var(DOCKER_IMAGE_ENV) };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let docker = match bollard::Docker::connect_with_defaults() {
            Ok(docker) if docker.ping().await.is_ok() => docker,
            _ => return skip::<()>("docker", &"no daemon answers").unwrap_or(()),
        };
        if docker.inspect_image(LOCAL).await.is_err() {
            return skip::<()>(
                &format!("the image {LOCAL}"),
                &"build it with ci/build-postgres-image.sh",
            )
            .unwrap_or(());
        }
        let options = ProvisionOptions::default()
            .with_backend(Backend::Docker)
            .with_pg_major(Some(15));
        let chosen = DockerImage::choose(&docker, &options).await.unwrap();
        assert_eq!(chosen.to_string(), LOCAL);

        // The backend itself runs it.
        let postgres = Postgres::start(&options).await.unwrap();
        let described = postgres.describe();
        let version = postgres.version().to_string();
        postgres.shutdown().await.unwrap();
        assert!(described.contains(&format!("image {LOCAL}")), "{described}");
        assert!(version.starts_with("15"), "{version}");

        // An image named explicitly still wins.
        let explicit = ProvisionOptions {
            docker_image: Some("postgres:15.14-bookworm".into()),
            ..options.clone()
        };
        let chosen = DockerImage::choose(&docker, &explicit).await.unwrap();
        assert_eq!(chosen.to_string(), "postgres:15.14-bookworm");
        // A major version with no local image falls back to its pinned tag.
        let other = options.with_pg_major(Some(13));
        if docker.inspect_image("rehearse-postgres:13").await.is_err() {
            let chosen = DockerImage::choose(&docker, &other).await.unwrap();
            assert_eq!(chosen.to_string(), "postgres:13.22-bookworm");
        }
    });
}
