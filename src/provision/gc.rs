//! `rehearse gc`: removes what a killed `rehearse` left behind.
//!
//! Everything we create records its owner (pid + process start time): local
//! cluster directories in `owner.json`, containers in a label. A resource
//! whose owner no longer runs is an orphan. `all` removes every resource of
//! ours regardless of owner.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::docker::{LABEL_HOST, LABEL_MANAGED, LABEL_OWNER, hostname};
use super::local::{
    BUILD_PREFIX, INSTANCE_PREFIX, OWNER_FILE, cache_dir, postmaster_pid, tmp_roots,
};
use super::owner::{Owner, process_start_ticks};
use super::server::{DatabaseMarker, ROLE_MARKER_TAG, drop_database, drop_role, role_left_error};

/// What `gc` removed and what it left alone.
#[derive(Debug, Default, serde::Serialize)]
pub struct GcReport {
    pub clusters_removed: Vec<PathBuf>,
    pub containers_removed: Vec<String>,
    /// Databases dropped on the `--database-url` server.
    pub databases_removed: Vec<String>,
    /// `rehearse_*` databases on that server without our marker and not
    /// belonging to a dead run: left alone (they may be a user's).
    pub databases_unmarked: Vec<String>,
    /// Roles a dead run's migrations created, dropped on that server.
    pub roles_removed: Vec<String>,
    /// Resources whose owner still runs (left alone).
    pub in_use: usize,
    /// Why Docker was not looked at, if it was not.
    pub docker_skipped: Option<String>,
    pub errors: Vec<String>,
    /// Half-written template cache entries of dead runs.
    pub cache_partials_removed: Vec<PathBuf>,
}

/// Where `gc` looks besides the default places.
#[derive(Debug, Clone, Default)]
pub struct GcOptions {
    /// Remove every resource of ours, even those a live run still uses.
    pub all: bool,
    /// A server to look for throwaway databases on (url backend).
    pub database_url: Option<String>,
    /// Another directory to look for local clusters in (`--tmp-dir` of the
    /// run that left them).
    pub tmp_dir: Option<PathBuf>,
}

/// Removes orphaned local clusters, containers and (with a database url)
/// throwaway databases; all of ours with `all`.
pub async fn collect(options: &GcOptions) -> GcReport {
    let mut report = GcReport::default();
    collect_clusters(options, &mut report);
    collect_cache_partials(options.all, &mut report);
    collect_containers(options.all, &mut report).await;
    if let Some(url) = &options.database_url {
        collect_databases(url, options.all, &mut report).await;
        // After the databases: the roles' grants and objects went with them.
        collect_roles(url, options.all, &mut report).await;
    }
    report
}

fn collect_clusters(options: &GcOptions, report: &mut GcReport) {
    let all = options.all;
    let mut roots = tmp_roots();
    if let Some(dir) = &options.tmp_dir {
        roots.insert(0, dir.clone());
        roots.dedup();
    }
    for root in roots {
        collect_builds(&cache_dir(&root), all, report);
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

/// Cache builds (`.build-KEY-PID-TICKS-RANDOM`) whose owner is dead: kills
/// what still runs on the folder (initdb and the postgres it started keep
/// running after their parent is SIGKILLed) and removes it.
fn collect_builds(cache: &Path, all: bool, report: &mut GcReport) {
    let Ok(entries) = fs::read_dir(cache) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(BUILD_PREFIX) else {
            continue;
        };
        // KEY-PID-TICKS-RANDOM; the key itself may hold dashes.
        let fields: Vec<&str> = rest.rsplitn(4, '-').collect();
        let owner = match fields.as_slice() {
            [_, ticks, pid, _] => pid.parse().ok().zip(ticks.parse().ok()),
            _ => None,
        };
        let Some((pid, start_ticks)) = owner else {
            continue;
        };
        let owner = Owner {
            pid,
            start_ticks,
            run_id: super::RunId::new(),
        };
        if !all && owner.is_alive() {
            report.in_use += 1;
            continue;
        }
        let dir = entry.path();
        kill_processes_on(&dir);
        match fs::remove_dir_all(&dir) {
            Ok(()) => report.clusters_removed.push(dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => report
                .errors
                .push(format!("removing {}: {e}", dir.display())),
        }
    }
}

/// SIGKILL to every process whose command line names `dir` (an orphaned
/// initdb and its bootstrap postgres), then waits until they are gone.
fn kill_processes_on(dir: &Path) {
    let needle = dir.to_string_lossy().into_owned();
    let Ok(procs) = fs::read_dir("/proc") else {
        return;
    };
    let mut killed = Vec::new();
    for entry in procs.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            // initdb runs in a group of its own with the postgres it
            // started; a pid that leads no group matches no group.
            let _ = nix::sys::signal::killpg(Pid::from_raw(pid), Signal::SIGKILL);
            killed.push(pid);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for pid in killed {
        while process_start_ticks(u32::try_from(pid).unwrap_or(0)).is_some()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
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
    super::local::abandon_builds();
    if !super::docker::WAS_USED.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    // Read before the first sweep: a start the signal cut short may still
    // have its create request in the daemon.
    let in_flight = super::docker::STARTING.load(std::sync::atomic::Ordering::SeqCst) > 0;
    let Ok(docker) = super::docker::client().await else {
        return;
    };
    remove_own_containers(&docker).await;
    if in_flight {
        // A create the daemon was still processing shows up (as Created)
        // within moments; sweep again once it has.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        remove_own_containers(&docker).await;
    }
}

async fn remove_own_containers(docker: &bollard::Docker) {
    let Ok(containers) = managed_containers(docker).await else {
        return;
    };
    let me = std::process::id();
    for container in containers {
        if container.same_host && container.owner.is_some_and(|o| o.pid == me) {
            match remove_container(docker, &container.id).await {
                // Gone already, or its own handle is removing it.
                Ok(())
                | Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404 | 409,
                    ..
                }) => {}
                Err(e) => {
                    super::cleanup_failed(&format!("removing container {}: {e}", container.id));
                }
            }
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

// SQL of the database sweep, kept together. `\_` because `_` alone matches
// any character in LIKE.
const SQL_OUR_DATABASES: &str = "SELECT d.datname, shobj_description(d.oid, 'pg_database') \
     FROM pg_database d WHERE d.datname LIKE 'rehearse\\_%' ORDER BY d.oid DESC";

/// Drops the throwaway databases of dead runs on a shared server.
///
/// A run marks every database it creates with a comment naming its run id,
/// process and host ([`DatabaseMarker`]). A run is dead when its marker
/// names this host and the process no longer runs (or with `all`). Every
/// database whose name carries a dead run's prefix is dropped (a clone
/// whose comment a SIGKILL cut off still carries the prefix); other
/// `rehearse_*` databases are reported and left alone.
async fn collect_databases(url: &str, all: bool, report: &mut GcReport) {
    let admin = match super::server::parse_url(url) {
        Ok(admin) => admin,
        Err(e) => {
            report.errors.push(e.to_string());
            return;
        }
    };
    let client = match admin.connect("rehearse-gc").await {
        Ok(client) => client,
        Err(e) => {
            report.errors.push(e.to_string());
            return;
        }
    };
    let rows = match client.query(SQL_OUR_DATABASES, &[]).await {
        Ok(rows) => rows,
        Err(e) => {
            report.errors.push(format!(
                "listing databases on {}: {}",
                admin.display_url(),
                super::describe_pg_error(&e)
            ));
            return;
        }
    };
    let databases: Vec<(String, Option<DatabaseMarker>)> = rows
        .iter()
        .map(|row| {
            let name: String = row.get(0);
            let comment: Option<String> = row.get(1);
            (name, comment.as_deref().and_then(DatabaseMarker::parse))
        })
        .collect();
    let here = super::docker::hostname();
    let mut dead_prefixes = Vec::new();
    let mut live_prefixes = Vec::new();
    for marker in databases.iter().filter_map(|(_, m)| m.as_ref()) {
        let alive = marker.host != here || marker.owner.is_alive();
        if all || !alive {
            dead_prefixes.push(marker.name_prefix());
        } else {
            live_prefixes.push(marker.name_prefix());
        }
    }
    for (name, _) in databases {
        if dead_prefixes.iter().any(|p| name.starts_with(p.as_str())) {
            match drop_database(&client, &name).await {
                Ok(()) => report.databases_removed.push(name),
                Err(e) => report.errors.push(format!(
                    "dropping database {name}: {}",
                    super::describe_pg_error(&e)
                )),
            }
        } else if live_prefixes.iter().any(|p| name.starts_with(p.as_str())) {
            report.in_use += 1;
        } else {
            report.databases_unmarked.push(name);
        }
    }
}

// SQL of the role sweep: only roles carrying a comment can be ours.
const SQL_MARKED_ROLES: &str = "SELECT rolname, shobj_description(oid, 'pg_authid') \
     FROM pg_roles WHERE shobj_description(oid, 'pg_authid') IS NOT NULL ORDER BY oid DESC";

/// Drops the roles a dead run's migrations created on a shared server.
///
/// A run marks each such role with a comment naming its run id, process
/// and host (a [`DatabaseMarker`] tagged [`ROLE_MARKER_TAG`]); only roles
/// with that marker are looked at, so a user's role is never touched. Dead
/// as for databases: the marker names this host and the process no longer
/// runs (or with `all`).
async fn collect_roles(url: &str, all: bool, report: &mut GcReport) {
    let Ok(admin) = super::server::parse_url(url) else {
        // Reported by the database sweep already.
        return;
    };
    let client = match admin.connect("rehearse-gc").await {
        Ok(client) => client,
        Err(e) => {
            report.errors.push(e.to_string());
            return;
        }
    };
    let rows = match client.query(SQL_MARKED_ROLES, &[]).await {
        Ok(rows) => rows,
        Err(e) => {
            report.errors.push(format!(
                "listing roles on {}: {}",
                admin.display_url(),
                super::describe_pg_error(&e)
            ));
            return;
        }
    };
    let here = super::docker::hostname();
    for row in rows {
        let name: String = row.get(0);
        let comment: String = row.get(1);
        let Some(marker) = serde_json::from_str::<DatabaseMarker>(&comment)
            .ok()
            .filter(|m| m.rehearse == ROLE_MARKER_TAG)
        else {
            continue;
        };
        let alive = marker.host != here || marker.owner.is_alive();
        if alive && !all {
            report.in_use += 1;
            continue;
        }
        match drop_role(&client, &name).await {
            Ok(()) => report.roles_removed.push(name),
            Err(e) => report
                .errors
                .push(role_left_error(&admin, &name, &e).to_string()),
        }
    }
}
