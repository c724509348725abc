//! Hostile mode surfaces data-dependent migration failures.

mod seed_support;

use pg_rehearse::seed::{SeedOptions, seed_database};

const SCHEMA: &str =
    "CREATE TABLE profiles (id int PRIMARY KEY, nickname text, bio varchar(50), score int)";

async fn set_not_null_after_seeding(hostile: bool) -> Option<Result<(), String>> {
    let db = pg_rehearse::testing::fresh_database().await?;
    let client = db.connect().await;
    client.batch_execute(SCHEMA).await.unwrap();
    let options = SeedOptions {
        seed: 7,
        scale: 2.0,
        hostile,
        progress: false,
    };
    seed_database(db.conn(), None, &options).await.unwrap();
    Some(
        client
            .batch_execute("ALTER TABLE profiles ALTER COLUMN nickname SET NOT NULL")
            .await
            .map_err(|e| {
                e.as_db_error()
                    .map(|d| d.code().code().to_owned())
                    .unwrap_or_default()
            }),
    )
}

#[tokio::test]
async fn hostile_mode_makes_set_not_null_fail_where_normal_mode_passes() {
    let Some(normal) = set_not_null_after_seeding(false).await else {
        return;
    };
    assert_eq!(normal, Ok(()));
    let Some(hostile) = set_not_null_after_seeding(true).await else {
        return;
    };
    // 23502: not_null_violation.
    assert_eq!(hostile, Err("23502".to_owned()));
}

#[tokio::test]
async fn hostile_values_include_quotes_unicode_and_boundaries() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let client = db.connect().await;
    client.batch_execute(SCHEMA).await.unwrap();
    let options = SeedOptions {
        seed: 3,
        scale: 5.0,
        hostile: true,
        progress: false,
    };
    seed_database(db.conn(), None, &options).await.unwrap();
    let row = client
        .query_one(
            "SELECT bool_or(nickname LIKE '%''%'), bool_or(nickname ~ '[^\\x01-\\x7e]'),
                    bool_or(nickname = ''), max(length(bio)), count(*) - count(DISTINCT nickname)
             FROM profiles",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "a quote");
    assert!(row.get::<_, bool>(1), "non-ascii");
    assert!(row.get::<_, bool>(2), "an empty string");
    assert_eq!(row.get::<_, i32>(3), 50, "strings at the varchar limit");
    assert!(row.get::<_, i64>(4) > 0, "duplicates");
}
