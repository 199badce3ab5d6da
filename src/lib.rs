//! scepd: a SCEP certificate authority server for managed devices.
//!
//! Layers, from the wire inwards: [`http`] (thin hyper adapter) → [`service`] (policy) →
//! [`scep`] (wire format, sans-IO), [`challenge`], [`store`] → `scepd_ca` (the CA core).

pub mod api;
pub mod backup_manifest;
pub mod bench;
pub mod challenge;
pub mod cli;
pub mod config;
pub mod datadir;
pub mod http;
pub mod identity;
pub mod keys;
pub mod metrics;
pub mod profile;
pub mod scep;
pub mod server;
pub mod service;
pub mod store;
pub mod webhook;
