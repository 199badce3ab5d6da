//! End-to-end tests: the real `scepd` binary, driven over HTTP by real clients (micromdm's
//! scepclient, certmonger), by messages made with the `openssl` command line, and by scepd's
//! own client-side code; results are checked with `openssl`.

mod support;

mod abuse;
mod admin;
mod bench;
mod challenges;
mod cli;
mod clients;
mod concurrency;
mod console;
mod console_auth;
mod crash;
mod disk;
mod faults;
mod hsm;
mod identity;
mod lifecycle;
mod multinode;
mod negative;
mod odt;
mod operations;
mod rollover;
mod rollover_nodes;
mod webhooks;
mod wire;
