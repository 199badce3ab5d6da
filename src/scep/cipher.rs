//! Content-encryption algorithms of SCEP envelopes: AES-CBC, 3DES-CBC, and (when an operator
//! allows it) single DES.

use cbc::cipher::{
    block_padding::Pkcs7, BlockCipherDecrypt, BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt, KeyInit,
    KeyIvInit,
};
use const_oid::ObjectIdentifier;

use super::oids;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentCipher {
    /// Single DES. RFC 8894 forbids it; micromdm's scepclient sends nothing else.
    DesCbc,
    DesEde3Cbc,
    Aes128Cbc,
    Aes192Cbc,
    Aes256Cbc,
}

impl ContentCipher {
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<ContentCipher> {
        Some(match *oid {
            oids::DES_CBC => ContentCipher::DesCbc,
            oids::DES_EDE3_CBC => ContentCipher::DesEde3Cbc,
            oids::AES128_CBC => ContentCipher::Aes128Cbc,
            oids::AES192_CBC => ContentCipher::Aes192Cbc,
            oids::AES256_CBC => ContentCipher::Aes256Cbc,
            _ => return None,
        })
    }

    pub fn oid(self) -> ObjectIdentifier {
        match self {
            ContentCipher::DesCbc => oids::DES_CBC,
            ContentCipher::DesEde3Cbc => oids::DES_EDE3_CBC,
            ContentCipher::Aes128Cbc => oids::AES128_CBC,
            ContentCipher::Aes192Cbc => oids::AES192_CBC,
            ContentCipher::Aes256Cbc => oids::AES256_CBC,
        }
    }

    pub fn key_len(self) -> usize {
        match self {
            ContentCipher::DesCbc => 8,
            ContentCipher::DesEde3Cbc => 24,
            ContentCipher::Aes128Cbc => 16,
            ContentCipher::Aes192Cbc => 24,
            ContentCipher::Aes256Cbc => 32,
        }
    }

    pub fn iv_len(self) -> usize {
        match self {
            ContentCipher::DesCbc | ContentCipher::DesEde3Cbc => 8,
            _ => 16,
        }
    }

    /// CBC decryption with PKCS#7 padding; `None` for a wrong key/IV length or bad padding.
    pub fn decrypt(self, key: &[u8], iv: &[u8], ciphertext: &[u8]) -> Option<Vec<u8>> {
        fn run<C>(key: &[u8], iv: &[u8], ct: &[u8]) -> Option<Vec<u8>>
        where
            C: BlockCipherDecrypt + KeyInit,
        {
            cbc::Decryptor::<C>::new_from_slices(key, iv)
                .ok()?
                .decrypt_padded_vec::<Pkcs7>(ct)
                .ok()
        }
        match self {
            ContentCipher::DesCbc => run::<des::Des>(key, iv, ciphertext),
            ContentCipher::DesEde3Cbc => run::<des::TdesEde3>(key, iv, ciphertext),
            ContentCipher::Aes128Cbc => run::<aes::Aes128>(key, iv, ciphertext),
            ContentCipher::Aes192Cbc => run::<aes::Aes192>(key, iv, ciphertext),
            ContentCipher::Aes256Cbc => run::<aes::Aes256>(key, iv, ciphertext),
        }
    }

    /// CBC encryption with PKCS#7 padding. `key` and `iv` must have this cipher's lengths.
    pub fn encrypt(self, key: &[u8], iv: &[u8], plaintext: &[u8]) -> Vec<u8> {
        fn run<C>(key: &[u8], iv: &[u8], pt: &[u8]) -> Vec<u8>
        where
            C: BlockCipherEncrypt + KeyInit,
        {
            cbc::Encryptor::<C>::new_from_slices(key, iv)
                .expect("key and IV lengths")
                .encrypt_padded_vec::<Pkcs7>(pt)
        }
        match self {
            ContentCipher::DesCbc => run::<des::Des>(key, iv, plaintext),
            ContentCipher::DesEde3Cbc => run::<des::TdesEde3>(key, iv, plaintext),
            ContentCipher::Aes128Cbc => run::<aes::Aes128>(key, iv, plaintext),
            ContentCipher::Aes192Cbc => run::<aes::Aes192>(key, iv, plaintext),
            ContentCipher::Aes256Cbc => run::<aes::Aes256>(key, iv, plaintext),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_cipher() {
        for c in [
            ContentCipher::DesCbc,
            ContentCipher::DesEde3Cbc,
            ContentCipher::Aes128Cbc,
            ContentCipher::Aes192Cbc,
            ContentCipher::Aes256Cbc,
        ] {
            let key = vec![7u8; c.key_len()];
            let iv = vec![9u8; c.iv_len()];
            let ct = c.encrypt(&key, &iv, b"a certificate request");
            assert_eq!(c.decrypt(&key, &iv, &ct).unwrap(), b"a certificate request");
            assert!(c.decrypt(&key[1..], &iv, &ct).is_none());
            assert_eq!(ContentCipher::from_oid(&c.oid()), Some(c));
        }
    }
}
