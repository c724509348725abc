//! `rehearse gc`: removes what a killed `rehearse` left behind.
//!
//! Everything we create records its owner (pid + process start time): local
//! cluster directories in `owner.json`, containers in a label. A resource
//! whose owner no longer runs is an orphan. `all` removes every resource of
//! ours regardless of owner.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::docker::{LABEL_HOST, LABEL_MANAGED, LABEL_OWNER, hostname};
use super::local::{INSTANCE_PREFIX, OWNER_FILE, postmaster_pid, tmp_roots};
use super::owner::{Owner, process_start_ticks};

/// What `gc` removed and what it left alone.
#[derive(Debug, Default, serde::Serialize)]
pub struct GcReport {
    pub clusters_removed: Vec<PathBuf>,
    pub containers_removed: Vec<String>,
    /// Resources whose owner still runs (left alone).
    pub in_use: usize,
    /// Why Docker was not looked at, if it was not.
    pub docker_skipped: Option<String>,
    pub errors: Vec<String>,
    /// Half-written template cache entries of dead runs.
    pub cache_partials_removed: Vec<PathBuf>,
}

/// Removes orphaned local clusters and containers (all of ours with `all`).
pub async fn collect(all: bool) -> GcReport {
    let mut report = GcReport::default();
    collect_clusters(all, &mut report);
    collect_cache_partials(all, &mut report);
    collect_containers(all, &mut report).await;
    report
}

fn collect_clusters(all: bool, report: &mut GcReport) {
    for root in tmp_roots() {
        let Ok(entries) = fs::read_dir(&root) else {
            continue;
        };
        for entry in entries.flatten() {
            let dir = entry.path();
            let is_ours = entry
                .file_name()
                .to_string_lossy()
                .starts_with(INSTANCE_PREFIX)
                && dir.join(OWNER_FILE).is_file();
            if !is_ours {
                continue;
            }
            let owner: Option<Owner> = fs::read_to_string(dir.join(OWNER_FILE))
                .ok()
                .and_then(|text| serde_json::from_str(&text).ok());
            if !all && owner.as_ref().is_some_and(Owner::is_alive) {
                report.in_use += 1;
                continue;
            }
            if let Some(pid) = postmaster_pid(&dir.join("data")) {
                stop_orphan_postmaster(pid, &dir);
            }
            match fs::remove_dir_all(&dir) {
                Ok(()) => report.clusters_removed.push(dir),
                // Another gc got there first: gone is what we wanted.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => report
                    .errors
                    .push(format!("removing {}: {e}", dir.display())),
            }
        }
    }
}

/// The template cache's entries are never garbage (`rehearse cache prune`
/// evicts them); what a killed run left half-written is.
fn collect_cache_partials(all: bool, report: &mut GcReport) {
    let Ok(settings) = super::cache::CacheSettings::new(None, 0) else {
        return;
    };
    let (removed, errors) = super::cache::collect_partials(&settings.dir, all);
    report.cache_partials_removed.extend(removed);
    report.errors.extend(errors);
}

/// SIGQUIT to an orphaned postmaster, after checking the pid really is a
/// postgres running on that directory (pids are recycled).
fn stop_orphan_postmaster(pid: i32, dir: &std::path::Path) {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return;
    };
    let cmdline = String::from_utf8_lossy(&cmdline);
    if !cmdline.contains("postgres") || !cmdline.contains(&*dir.to_string_lossy()) {
        return;
    }
    let target = Pid::from_raw(pid);
    let _ = kill(target, Signal::SIGQUIT);
    let deadline = Instant::now() + Duration::from_secs(5);
    // Not our child, so we cannot wait on it: poll until it is gone (or a
    // zombie, which holds nothing).
    while process_start_ticks(u32::try_from(pid).unwrap_or(0)).is_some() {
        if Instant::now() >= deadline {
            let _ = kill(target, Signal::SIGKILL);
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

async fn collect_containers(all: bool, report: &mut GcReport) {
    let docker = match super::docker::client().await {
        Ok(docker) => docker,
        Err(e) => {
            report.docker_skipped = Some(e.to_string());
            return;
        }
    };
    let containers = match managed_containers(&docker).await {
        Ok(list) => list,
        Err(e) => {
            report.errors.push(format!("listing containers: {e}"));
            return;
        }
    };
    for ManagedContainer {
        id,
        owner,
        same_host,
    } in containers
    {
        // An owner on another host cannot be checked from here: only `all`
        // removes those.
        let owner_alive = !same_host || owner.as_ref().is_some_and(Owner::is_alive);
        if !all && owner_alive {
            report.in_use += 1;
            continue;
        }
        match remove_container(&docker, &id).await {
            Ok(()) => report
                .containers_removed
                .push(id.chars().take(12).collect()),
            // Another gc (or the owner's own cleanup) got there first.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => report.errors.push(format!("removing container {id}: {e}")),
        }
    }
}

/// Removes the containers this process owns (used after a signal, when a
/// start may have been cut short before its handle existed). Local clusters
/// need no sweep: their directory is created by a handle that cleans it.
pub async fn collect_own() {
    if !super::docker::WAS_USED.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let Ok(docker) = super::docker::client().await else {
        return;
    };
    let Ok(containers) = managed_containers(&docker).await else {
        return;
    };
    let me = std::process::id();
    for container in containers {
        if container.same_host && container.owner.is_some_and(|o| o.pid == me) {
            let _ = remove_container(&docker, &container.id).await;
        }
    }
}

/// A container carrying our labels.
struct ManagedContainer {
    id: String,
    owner: Option<Owner>,
    /// Whether the owner label names this host (so its pid can be checked).
    same_host: bool,
}

async fn managed_containers(
    docker: &bollard::Docker,
) -> Result<Vec<ManagedContainer>, bollard::errors::Error> {
    use bollard::query_parameters::ListContainersOptionsBuilder;
    let filters = std::collections::HashMap::from([(
        "label".to_string(),
        vec![format!("{LABEL_MANAGED}=true")],
    )]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let here = hostname();
    let containers = docker.list_containers(Some(options)).await?;
    Ok(containers
        .into_iter()
        .filter_map(|container| {
            let labels = container.labels.unwrap_or_default();
            Some(ManagedContainer {
                id: container.id?,
                owner: labels
                    .get(LABEL_OWNER)
                    .and_then(|text| serde_json::from_str(text).ok()),
                same_host: labels.get(LABEL_HOST).is_some_and(|h| *h == here),
            })
        })
        .collect())
}

async fn remove_container(
    docker: &bollard::Docker,
    id: &str,
) -> Result<(), bollard::errors::Error> {
    use bollard::query_parameters::RemoveContainerOptionsBuilder;
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    docker.remove_container(id, Some(options)).await
}
