//! Sealing secrets the server must keep in memory (a session's current access token) with
//! AES-256-GCM under a per-session key, a fresh 96-bit nonce per seal and the session id as
//! associated data, so a sealed value cannot be opened under another session. The key is
//! zeroized when the session ends (dropped).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("the random generator failed")]
    Random,
    #[error("sealing failed")]
    Seal,
    #[error("the sealed value does not open (tampered, or another key or session)")]
    Open,
}

/// A per-session sealing key; wiped on drop, never printed.
pub struct SealKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Nonce and ciphertext (with its tag).
#[derive(Clone)]
pub struct Sealed {
    nonce: [u8; 12],
    ciphertext: Vec<u8>,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[sealed]")
    }
}

impl SealKey {
    pub fn generate() -> Result<Self, SealError> {
        let mut key = Zeroizing::new([0u8; 32]);
        crate::auth::secret::fill_random(key.as_mut()).map_err(|_| SealError::Random)?;
        Ok(Self(key))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.0.as_ref().into())
    }

    pub fn seal(&self, plaintext: &[u8], associated: &[u8]) -> Result<Sealed, SealError> {
        let mut nonce = [0u8; 12];
        crate::auth::secret::fill_random(&mut nonce).map_err(|_| SealError::Random)?;
        let ciphertext = self
            .cipher()
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: associated,
                },
            )
            .map_err(|_| SealError::Seal)?;
        Ok(Sealed { nonce, ciphertext })
    }

    pub fn open(
        &self,
        sealed: &Sealed,
        associated: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        self.cipher()
            .decrypt(
                &Nonce::from(sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: associated,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s17_sealed_tokens_round_trip_and_refuse_tampering_and_other_sessions()
    -> Result<(), SealError> {
        let key = SealKey::generate()?;
        let sealed = key.seal(b"token", b"session-a")?;
        assert_eq!(key.open(&sealed, b"session-a")?.as_slice(), b"token");
        assert_eq!(key.open(&sealed, b"session-b").err(), Some(SealError::Open));
        let mut tampered = sealed.clone();
        tampered.ciphertext[0] ^= 1;
        assert_eq!(
            key.open(&tampered, b"session-a").err(),
            Some(SealError::Open)
        );
        let other = SealKey::generate()?;
        assert_eq!(
            other.open(&sealed, b"session-a").err(),
            Some(SealError::Open)
        );
        let again = key.seal(b"token", b"session-a")?;
        assert_ne!(again.nonce, sealed.nonce, "nonces must be fresh");
        Ok(())
    }
}
