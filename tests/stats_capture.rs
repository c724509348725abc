//! `rehearse stats capture` on a database of known shape: the snapshot
//! holds the shape, no original text value unless asked, refuses writes,
//! and needs (and names) the privilege that reveals pg_stats.

use std::path::Path;

use pg_rehearse::provision::ConnInfo;

#[expect(dead_code, reason = "the capture needs a URL, not local binaries")]
mod cli_support;
use pg_rehearse::stats::{CaptureOptions, StatsError, StatsSnapshot, ValueKind, capture};

/// 20,000 people: a skewed `status`, 30 % NULL `note`, `created_at`
/// rising with the physical order, personal-looking e-mail addresses.
const SHAPE: &str = "
CREATE TABLE people (
    id bigint PRIMARY KEY,
    email text NOT NULL,
    status text NOT NULL,
    note text,
    created_at timestamptz NOT NULL,
    score int4);
INSERT INTO people
SELECT g, 'person' || g || '.' || md5(g::text) || '@mail.example',
       CASE WHEN g % 10 < 7 THEN 'active' WHEN g % 10 < 9 THEN 'paused' ELSE 'closed' END,
       CASE WHEN g % 10 < 3 THEN NULL ELSE 'note ' || g END,
       timestamptz '2024-01-01' + g * interval '1 minute',
       (g * 7919) % 1000
  FROM generate_series(1, 20000) g;
CREATE INDEX people_status ON people (status);
ANALYZE people;";

async fn shaped() -> Option<(pg_rehearse::testing::TestDatabase, tokio_postgres::Client)> {
    let db = pg_rehearse::testing::fresh_database().await?;
    let client = db.connect().await;
    client.batch_execute(SHAPE).await.unwrap();
    Some((db, client))
}

#[tokio::test]
async fn snapshot_holds_the_shape_and_no_original_text() {
    let Some((_db, client)) = shaped().await else {
        return;
    };
    let snapshot = capture(&client, &CaptureOptions::default()).await.unwrap();
    let json = serde_json::to_string(&snapshot).unwrap();
    let back = StatsSnapshot::parse(&json, Path::new("snapshot.json")).unwrap();
    assert_eq!(back, snapshot, "the JSON round-trips");

    let people = snapshot.table("people").expect("people captured");
    let rows = people.rows.expect("analyzed");
    assert!((rows - 20_000.0).abs() < 1.0, "reltuples {rows}");
    assert!(people.pages > 0 && people.total_bytes > people.index_bytes);
    assert_eq!(people.indexes.len(), 2);
    assert!(people.indexes.iter().any(
        |i| i.definition == "CREATE INDEX people_status ON public.people USING btree (status)"
    ));

    let status = people.column("status").unwrap();
    assert!(
        (status.most_common_freqs[0] - 0.7).abs() < 0.03,
        "{status:?}"
    );
    assert_eq!(status.values, ValueKind::Synthetic);
    let note = people.column("note").unwrap();
    assert!((note.null_frac - 0.3).abs() < 0.03, "{note:?}");
    let created = people.column("created_at").unwrap();
    assert!(created.correlation.unwrap() > 0.99, "{created:?}");
    assert_eq!(created.values, ValueKind::Original);
    assert!(
        created.histogram_bounds[0].starts_with("2024-01-01"),
        "{created:?}"
    );
    let email = people.column("email").unwrap();
    assert!(
        (email.n_distinct + 1.0).abs() < 1e-6,
        "all distinct: {email:?}"
    );
    assert_eq!(email.values, ValueKind::Synthetic);
    assert_eq!(
        email.histogram_lengths,
        email
            .histogram_bounds
            .iter()
            .map(|b| b.chars().count())
            .collect::<Vec<_>>(),
        "stand-ins keep each bound's length"
    );
    assert!(email.histogram_bounds.windows(2).all(|w| w[0] < w[1]));

    // No original text value anywhere in the file.
    for row in client
        .query("SELECT DISTINCT v FROM people, LATERAL (VALUES (email), (status), (note)) x(v) WHERE v IS NOT NULL", &[])
        .await
        .unwrap()
    {
        let value: String = row.get(0);
        assert!(!json.contains(&format!("\"{value}\"")), "{value} leaked");
    }
    assert!(!json.contains("@mail.example"));

    let kept = capture(
        &client,
        &CaptureOptions {
            keep_values: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let status = kept.table("people").unwrap().column("status").unwrap();
    assert_eq!(status.most_common_vals[0], "active");
    assert!(
        serde_json::to_string(&kept)
            .unwrap()
            .contains("@mail.example")
    );
}

#[tokio::test]
async fn the_session_refuses_writes() {
    let Some((_db, client)) = shaped().await else {
        return;
    };
    pg_rehearse::stats::read_only_session(&client)
        .await
        .unwrap();
    let error = client
        .batch_execute("INSERT INTO people VALUES (0, 'x', 'x', NULL, now(), 0)")
        .await
        .unwrap_err();
    assert_eq!(error.code().map(|c| c.code()), Some("25006"), "{error}");
}

#[tokio::test]
async fn works_as_a_read_only_role_and_names_the_missing_privilege() {
    let Some((db, client)) = shaped().await else {
        return;
    };
    // Roles are cluster-wide: name them after this test's database.
    let suffix = &db.conn().dbname;
    let reader = format!("reader_{suffix}");
    let stranger = format!("stranger_{suffix}");
    client
        .batch_execute(&format!(
            "CREATE ROLE \"{reader}\" LOGIN PASSWORD 'pw-reader' IN ROLE pg_read_all_data;
             CREATE ROLE \"{stranger}\" LOGIN PASSWORD 'pw-stranger' IN ROLE pg_read_all_stats;"
        ))
        .await
        .unwrap();
    let as_role = |role: &str, password: &str| {
        ConnInfo::new(db.conn().host.clone(), db.conn().port, role)
            .with_password(Some(password.to_owned()))
            .with_dbname(db.conn().dbname.clone())
    };
    let reader_client = as_role(&reader, "pw-reader").connect("test").await.unwrap();
    let snapshot = capture(&reader_client, &CaptureOptions::default())
        .await
        .unwrap();
    assert_eq!(snapshot.table("people").unwrap().columns.len(), 6);

    let stranger_client = as_role(&stranger, "pw-stranger")
        .connect("test")
        .await
        .unwrap();
    let error = capture(&stranger_client, &CaptureOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(error, StatsError::Privilege { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains("public.people"), "{message}");
    assert!(message.contains("pg_read_all_data"), "{message}");
    drop(reader_client);
    drop(stranger_client);
    client
        .batch_execute(&format!(
            "DROP ROLE \"{reader}\"; DROP ROLE \"{stranger}\";"
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_command_writes_the_snapshot_and_reports_errors_by_exit_code() {
    let Some((db, _client)) = shaped().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("prod-stats.json");
    let url = db.conn().url_with_password();
    let out_arg = out.display().to_string();
    let (code, stdout, stderr) = cli_support::rehearse(&[
        "stats",
        "capture",
        "--database-url",
        &url,
        "--schema",
        "public",
        "-o",
        &out_arg,
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stderr.contains("captured 1 tables, 6 columns"), "{stderr}");
    let snapshot = StatsSnapshot::load(&out).unwrap();
    assert_eq!(snapshot.format, "rehearse-stats");
    assert!(snapshot.table("people").is_some());
    if let Some(password) = db.conn().password() {
        assert!(!stderr.contains(password) && !stdout.contains(password));
    }

    // To standard output by default; a schema with no tables is empty.
    let (code, stdout, _) = cli_support::rehearse(&[
        "stats",
        "capture",
        "--database-url",
        &url,
        "--schema",
        "nothing_here",
    ]);
    assert_eq!(code, 0);
    let empty = StatsSnapshot::parse(&stdout, Path::new("stdout")).unwrap();
    assert!(empty.tables.is_empty());

    let (code, _, stderr) =
        cli_support::rehearse(&["stats", "capture", "--database-url", "postgres://x:1:2/"]);
    assert_eq!(code, 2, "a malformed url is bad input: {stderr}");
}
