//! The rehearsal itself: replicas, app workloads and the lock sampler running
//! against a provisioned database, all emitting events into the timeline.
