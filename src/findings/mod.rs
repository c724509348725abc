//! Findings: checks over a timeline, one check per file.
