//! Test support: the real scepd binary as a process, a small HTTP client, the `openssl`
//! command line, and scepd's own client-side message builder.

pub mod ber;
pub mod http;
pub mod openssl;
pub mod requester;
#[path = "../../support/scratch_db.rs"]
pub mod scratch_db;
pub mod server;
#[path = "../../support/skip.rs"]
pub mod skip;

pub use requester::Requester;
pub use server::Server;
