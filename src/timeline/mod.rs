//! The timeline: plain, serialisable, timestamped events of a rehearsal.
