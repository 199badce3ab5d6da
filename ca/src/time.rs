//! Time conversions between the system clock and X.509 times.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use x509_cert::time::Time;

use crate::error::CaError;

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

pub fn to_x509(unix_seconds: u64) -> Result<Time, CaError> {
    Ok(Time::try_from(UNIX_EPOCH + Duration::from_secs(unix_seconds))?)
}

pub fn from_x509(time: &Time) -> u64 {
    time.to_unix_duration().as_secs()
}
