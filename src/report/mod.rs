//! Reports rendered from the timeline and findings.
