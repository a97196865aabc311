//! Handles: how a session is named to someone who is not its user (an admin listing everyone's).
//! A session id is a bearer secret over stdio, so an admin who saw other users' ids could act
//! as them, and the audit log would blame them. A handle names the same session for admin tools
//! but is never a credential: it is the id under a per-process AES-256 permutation (two blocks,
//! the second chained to the first), 64 hex characters like an id, stable while the process runs,
//! and reversible only by this process.

use aes_gcm::aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use aes_gcm::aes::{Aes256, Block};

use super::SessionId;

pub struct Handles {
    cipher: Aes256,
}

impl Handles {
    /// A fresh random key; `None` when the random generator fails.
    pub fn new() -> Option<Self> {
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        crate::auth::secret::fill_random(key.as_mut()).ok()?;
        let cipher = Aes256::new_from_slice(key.as_ref()).ok()?;
        Some(Self { cipher })
    }

    /// The handle of `id`.
    pub fn of(&self, id: SessionId) -> String {
        let bytes = id.as_bytes();
        let mut first = block(&bytes[..16]);
        self.cipher.encrypt_block(&mut first);
        let mut second = block(&bytes[16..]);
        for (b, c) in second.iter_mut().zip(first.iter()) {
            *b ^= c;
        }
        self.cipher.encrypt_block(&mut second);
        let mut out = [0u8; 32];
        out[..16].copy_from_slice(&first);
        out[16..].copy_from_slice(&second);
        hex::encode(out)
    }

    /// The session id a handle names (whether that session still lives is the store's to say).
    pub fn id_of(&self, handle: &str) -> Option<SessionId> {
        let parsed = SessionId::parse(handle)?;
        let bytes = parsed.as_bytes();
        let first = block(&bytes[..16]);
        let mut second = block(&bytes[16..]);
        self.cipher.decrypt_block(&mut second);
        for (b, c) in second.iter_mut().zip(first.iter()) {
            *b ^= c;
        }
        let mut plain_first = first;
        self.cipher.decrypt_block(&mut plain_first);
        let mut out = [0u8; 32];
        out[..16].copy_from_slice(&plain_first);
        out[16..].copy_from_slice(&second);
        SessionId::parse(&hex::encode(out))
    }
}

fn block(bytes: &[u8]) -> Block {
    let mut block = Block::default();
    block.copy_from_slice(bytes);
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip_and_differ_from_the_id_and_between_processes() {
        let handles = Handles::new().unwrap();
        let other = Handles::new().unwrap();
        let id = SessionId::parse(&"5a".repeat(32)).unwrap();
        let handle = handles.of(id);
        assert_eq!(handle.len(), 64);
        assert_ne!(handle, id.to_hex());
        assert_eq!(handles.id_of(&handle), Some(id));
        assert_ne!(other.of(id), handle, "another process names it otherwise");
        let mut changed = handle.clone().into_bytes();
        changed[40] = if changed[40] == b'0' { b'1' } else { b'0' };
        let changed = String::from_utf8(changed).unwrap();
        assert_ne!(handles.id_of(&changed), Some(id));
    }
}
