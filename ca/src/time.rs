//! Time conversions between the system clock and X.509 times.

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use x509_cert::time::Time;

use crate::error::CaError;

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch: the time that opens serials and challenges, so that
/// those made together sort together in the store.
pub fn unix_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// Unix seconds that follow the monotonic clock from the first call on: the system clock at
/// that moment, plus the time elapsed since. A step of the system clock while the process runs
/// (set back an hour, forward a day) does not move it, so a lifetime measured with it neither
/// stretches nor collapses. scepd measures challenge lifetimes with it; certificates, CRLs and
/// OCSP answers are dated by the system clock ([`unix_now`]), which relying parties compare.
pub fn steady_unix_now() -> u64 {
    static ANCHOR: OnceLock<(u64, Instant)> = OnceLock::new();
    let (wall, at) = ANCHOR.get_or_init(|| (unix_now(), Instant::now()));
    wall + at.elapsed().as_secs()
}

/// An X.509 time: UTCTime through 2049, GeneralizedTime after (RFC 5280 §4.1.2.5, §5.1.2.4).
pub fn to_x509(unix_seconds: u64) -> Result<Time, CaError> {
    let dt = der::DateTime::from_unix_duration(Duration::from_secs(unix_seconds))?;
    Ok(if dt.year() <= 2049 {
        Time::UtcTime(der::asn1::UtcTime::from_date_time(dt)?)
    } else {
        Time::GeneralTime(der::asn1::GeneralizedTime::from_date_time(dt))
    })
}

/// A GeneralizedTime (what OCSP uses).
pub fn to_generalized(unix_seconds: u64) -> Result<der::asn1::GeneralizedTime, CaError> {
    Ok(der::asn1::GeneralizedTime::from_unix_duration(Duration::from_secs(
        unix_seconds,
    ))?)
}

/// An X.509 Time as Unix seconds.
pub fn from_x509(time: &Time) -> u64 {
    time.to_unix_duration().as_secs()
}

/// RFC 3339 in UTC (`2026-12-02T11:30:00Z`), as the admin API and the logs print times; empty
/// for a time the calendar cannot hold.
pub fn rfc3339(unix_seconds: u64) -> String {
    i64::try_from(unix_seconds)
        .ok()
        .and_then(|s| ::time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(&::time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}
