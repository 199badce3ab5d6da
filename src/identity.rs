//! What makes nodes members of one CA: the nodes sharing a store must hold the same CA, the same
//! challenge key (a challenge minted on one is redeemed on another; MDM passwords are hashed
//! under it) and the same admin token. Each node's data directory (or secret mount) holds them;
//! the store records fingerprints of the first node's, and a node with different ones refuses
//! to start rather than reject every challenge another node minted.

use sha2::{Digest, Sha256};

use crate::challenge::key::ChallengeKey;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "this node's {what} differs from the one the store was first used with ({recorded}, here {here}): every node sharing \
         a store needs the same data directory secrets (ca.pem, ca.key, ra.*, challenge.key, admin.token; docs/multi-node.md)"
    )]
    Mismatch {
        what: &'static str,
        recorded: String,
        here: String,
    },
}

/// Records this node's fingerprints in the store, or checks them against the recorded ones.
pub fn bind(
    store: &dyn Store,
    ca_der: &[u8],
    challenge_key: &ChallengeKey,
    admin_token: &str,
) -> Result<(), IdentityError> {
    let fingerprints = [
        ("CA certificate", "ca_sha256", hex::encode(Sha256::digest(ca_der))),
        // A value derived from the key, not the key.
        (
            "challenge key",
            "challenge_key_id",
            hex::encode(&challenge_key.derive("store identity")[..16]),
        ),
        (
            "admin token",
            "admin_token_sha256",
            hex::encode(Sha256::digest(admin_token.as_bytes())),
        ),
    ];
    for (what, name, here) in fingerprints {
        let recorded = store.bind_identity(name, &here)?;
        if recorded != here {
            return Err(IdentityError::Mismatch {
                what,
                recorded: short(&recorded),
                here: short(&here),
            });
        }
    }
    Ok(())
}

/// Enough of a fingerprint to tell two apart in a message.
fn short(fingerprint: &str) -> String {
    format!("{}…", &fingerprint[..fingerprint.len().min(16)])
}
