//! The format of an audit line and its MAC chain, shared by the writer and the verifier.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::auth::secret::SecretBytes;

/// Every line ends with `,"mac":"<64 hex>"}`.
const MAC_SUFFIX_LEN: usize = r#","mac":""}"#.len() + 64;

/// The keys of the log: one for session-id hashes, one for the chain.
pub(super) struct Keys {
    pub(super) session: SecretBytes,
    chain: SecretBytes,
}

impl Keys {
    pub(super) fn derive(signing_key: &SecretBytes) -> Result<Self, std::io::Error> {
        let derive = |label: &[u8]| {
            let mut mac = Hmac::<Sha256>::new_from_slice(signing_key.expose())
                .map_err(|_| std::io::Error::other("bad key"))?;
            mac.update(label);
            Ok::<_, std::io::Error>(SecretBytes::new(mac.finalize().into_bytes().to_vec()))
        };
        Ok(Self {
            session: derive(b"mcp-sessions audit session-id hash v1")?,
            chain: derive(b"mcp-sessions audit chain v1")?,
        })
    }

    pub(super) fn chain_mac(&self, parts: &[&[u8]]) -> String {
        match Hmac::<Sha256>::new_from_slice(self.chain.expose()) {
            Ok(mut mac) => {
                for part in parts {
                    mac.update(part);
                }
                hex::encode(mac.finalize().into_bytes())
            }
            Err(_) => String::new(),
        }
    }

    /// What the first line of a file with this `genesis` must carry as `prev`.
    pub(super) fn genesis_prev(&self, genesis: &str) -> String {
        self.chain_mac(&[b"genesis:", genesis.as_bytes()])
    }

    /// The `mac` of a line whose JSON without the `mac` field is `body`.
    pub(super) fn line_mac(&self, body: &[u8]) -> String {
        self.chain_mac(&[b"line:", body])
    }
}

/// Splits a line into the JSON it was MACed as and the `mac` it carries.
pub(super) fn split_mac(line: &[u8]) -> Option<(Vec<u8>, String)> {
    let cut = line.len().checked_sub(MAC_SUFFIX_LEN)?;
    let suffix = std::str::from_utf8(&line[cut..]).ok()?;
    let mac = suffix.strip_prefix(r#","mac":""#)?.strip_suffix(r#""}"#)?;
    let mut body = line[..cut].to_vec();
    body.push(b'}');
    Some((body, mac.to_owned()))
}

pub(super) fn line_mac_field(line: &[u8]) -> Option<String> {
    split_mac(line).map(|(_, mac)| mac)
}

pub(super) fn line_seq(line: &[u8]) -> Option<u64> {
    serde_json::from_slice::<Value>(line)
        .ok()?
        .get("seq")?
        .as_u64()
}
