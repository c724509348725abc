//! Seeding: fills a freshly migrated database with realistic generated data.
