//! Same spec and seed: identical data, checked with a checksum of every table.

mod seed_support;

use std::path::Path;

use pg_rehearse::seed::{SeedOptions, SeedSpec, seed_database};
use seed_support::{ECOMMERCE, checksums};

async fn seeded(seed: u64) -> Option<Vec<(String, String)>> {
    let db = pg_rehearse::testing::fresh_database().await?;
    let client = db.connect().await;
    client.batch_execute(ECOMMERCE).await.unwrap();
    let spec = SeedSpec::load(Path::new("seeds/ecommerce.toml")).unwrap();
    let options = SeedOptions {
        seed,
        scale: 0.02,
        hostile: false,
        progress: false,
    };
    seed_database(db.conn(), Some(&spec), &options)
        .await
        .unwrap();
    Some(checksums(&client).await)
}

#[tokio::test]
async fn same_seed_same_data_different_seed_different_data() {
    let Some(first) = seeded(42).await else {
        return;
    };
    let Some(second) = seeded(42).await else {
        return;
    };
    let Some(other) = seeded(43).await else {
        return;
    };
    assert_eq!(first.len(), 6);
    assert_eq!(first, second);
    for ((table, a), (_, b)) in first.iter().zip(&other) {
        assert_ne!(a, b, "table {table} did not change with the seed");
    }
}

#[tokio::test]
async fn hostile_data_is_deterministic_too() {
    let mut sums = Vec::new();
    for _ in 0..2 {
        let Some(db) = pg_rehearse::testing::fresh_database().await else {
            return;
        };
        let client = db.connect().await;
        client.batch_execute(seed_support::SAAS).await.unwrap();
        let options = SeedOptions {
            seed: 5,
            scale: 0.3,
            hostile: true,
            progress: false,
        };
        seed_database(db.conn(), None, &options).await.unwrap();
        sums.push(checksums(&client).await);
    }
    assert_eq!(sums[0], sums[1]);
}
