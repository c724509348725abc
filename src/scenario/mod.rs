//! Scenario files: what a rehearsal does, parsed with spans.
