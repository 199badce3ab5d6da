//! Signing secrets: made here, sealed at rest, and used to sign (Standard Webhooks).
//!
//! The secret must stay usable for HMAC, so the store cannot keep a hash of it: it keeps it
//! sealed with AES-256-GCM under a key derived from the data directory's `challenge.key`
//! (already 0600 and the same on every node), with the endpoint id as associated data, so a
//! sealed secret moved to another endpoint does not open.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::hmac;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use zeroize::Zeroizing;

use crate::store::outbox::WebhookId;

/// Random bytes of a new secret (Svix uses 24; 32 is HMAC-SHA256's block-size-friendly choice).
const SECRET_BYTES: usize = 32;
/// The prefix every Standard Webhooks secret carries.
pub const PREFIX: &str = "whsec_";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The sealed secret does not open under this node's key (another data directory's
    /// `challenge.key`, or a damaged record).
    #[error("a webhook secret does not open: is challenge.key the same on every node?")]
    Unseal,
}

/// A signing secret's raw bytes (the HMAC key).
pub struct SigningSecret(Zeroizing<Vec<u8>>);

impl SigningSecret {
    pub fn generate() -> SigningSecret {
        let mut bytes = Zeroizing::new(vec![0u8; SECRET_BYTES]);
        aws_lc_rs::rand::fill(&mut bytes).expect("system RNG");
        SigningSecret(bytes)
    }

    /// A secret as the receiver holds it (`whsec_` + base64).
    pub fn from_whsec(text: &str) -> Option<SigningSecret> {
        let bytes = B64.decode(text.strip_prefix(PREFIX)?).ok()?;
        Some(SigningSecret(Zeroizing::new(bytes)))
    }

    /// `whsec_` + base64: what the operator gives the receiver.
    pub fn to_whsec(&self) -> String {
        format!("{PREFIX}{}", B64.encode(&*self.0))
    }

    /// `v1,` + base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}")).
    pub fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(id.as_bytes());
        ctx.update(b".");
        ctx.update(timestamp.to_string().as_bytes());
        ctx.update(b".");
        ctx.update(body);
        format!("v1,{}", B64.encode(ctx.sign().as_ref()))
    }
}

/// The `webhook-signature` header: one signature per secret, space-separated (during a
/// rotation's overlap both the new and the old secret sign).
pub fn signature_header(secrets: &[SigningSecret], id: &str, timestamp: u64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|s| s.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Seals and opens secrets with the node's key.
pub struct SecretBox {
    key: LessSafeKey,
}

impl SecretBox {
    pub fn new(key: &[u8; 32]) -> SecretBox {
        SecretBox {
            key: LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("32-byte key")),
        }
    }

    /// base64(nonce ‖ ciphertext ‖ tag), bound to `endpoint`.
    pub fn seal(&self, endpoint: &WebhookId, secret: &SigningSecret) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).expect("system RNG");
        let mut sealed = Zeroizing::new(secret.0.to_vec());
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(endpoint.as_str().as_bytes()),
                &mut *sealed,
            )
            .expect("AES-GCM seal");
        B64.encode([&nonce[..], &sealed[..]].concat())
    }

    pub fn open(&self, endpoint: &WebhookId, sealed: &str) -> Result<SigningSecret, SecretError> {
        let bytes = B64.decode(sealed).map_err(|_| SecretError::Unseal)?;
        if bytes.len() < NONCE_LEN {
            return Err(SecretError::Unseal);
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SecretError::Unseal)?;
        let mut buf = Zeroizing::new(rest.to_vec());
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(endpoint.as_str().as_bytes()), &mut buf)
            .map_err(|_| SecretError::Unseal)?;
        Ok(SigningSecret(Zeroizing::new(plain.to_vec())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks reference libraries.
    #[test]
    fn signs_the_reference_example() {
        let secret = SigningSecret::from_whsec("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn sealed_secrets_open_only_for_their_endpoint_and_key() {
        let boxed = SecretBox::new(&[7u8; 32]);
        let (a, b) = (WebhookId::generate(), WebhookId::generate());
        let secret = SigningSecret::generate();
        let sealed = boxed.seal(&a, &secret);
        assert_eq!(boxed.open(&a, &sealed).unwrap().to_whsec(), secret.to_whsec());
        assert!(boxed.open(&b, &sealed).is_err());
        assert!(SecretBox::new(&[8u8; 32]).open(&a, &sealed).is_err());
        assert!(!sealed.contains(&secret.to_whsec()[PREFIX.len()..]));
    }
}
