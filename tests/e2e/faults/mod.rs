//! Reliability under faults (issue 14): damaged files at start, damaged backups, clock jumps,
//! floods of slow and idle connections, a PostgreSQL store turned read-only.

mod backup;
mod clock;
mod memory;
mod postgres;
pub(crate) mod start;
