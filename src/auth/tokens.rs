//! JWT access and refresh tokens: HS256 only, every claim required, short leeway, and the token
//! type checked so a refresh token never passes as an access token (RFC 8725). The signing key
//! comes from `MCP_SESSIONS_JWT_SECRET` or a 0600 key file created on first start.
//!
//! Keys rotate: every token names its key in `kid`; after a rotation the previous key stays
//! verify-only for a grace period, and a token whose `kid` is unknown (or past its grace) is
//! refused.

use std::path::Path;
use std::sync::{Arc, RwLock};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::auth::secret::{SecretBytes, fill_random};

/// Shortest signing key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "MCP_SESSIONS_JWT_SECRET is {0} bytes; the signing key needs at least {MIN_KEY_BYTES} random bytes"
    )]
    ShortSecret(usize),
    #[error(
        "the key file {path} holds {len} bytes; it needs at least {MIN_KEY_BYTES} (delete it to have a new one made)"
    )]
    ShortFile { path: String, len: usize },
    #[error("cannot read or create the key file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the operating system's random generator failed")]
    Random,
}

/// Why a token was refused. Never carries the token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token is invalid or expired")]
    Invalid,
    #[error("the token is of the wrong type")]
    WrongType,
    #[error("the token could not be issued")]
    Issue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Access,
    Refresh,
}

/// The claims of every token this server issues; all are required on the way in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// User id.
    pub sub: String,
    /// Session id.
    pub sid: String,
    /// Token id; the session remembers the current refresh token's.
    pub jti: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub typ: TokenKind,
}

/// One signing key, named by its `kid`.
struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    _secret: SecretBytes,
}

impl SigningKey {
    fn new(secret: SecretBytes) -> Self {
        Self {
            kid: key_id(&secret),
            encoding: EncodingKey::from_secret(secret.expose()),
            decoding: DecodingKey::from_secret(secret.expose()),
            _secret: secret,
        }
    }
}

/// The public name of a key: 16 hex characters of a hash of it (reveals nothing of the key).
pub fn key_id(secret: &SecretBytes) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(b"mcp-sessions kid v1:")
        .chain_update(secret.expose())
        .finalize();
    hex::encode(&digest[..8])
}

struct KeyRing {
    current: Arc<SigningKey>,
    /// The key before the last rotation, accepted for verification until the given second.
    previous: Option<(Arc<SigningKey>, u64)>,
}

/// The signing keys and validation rules.
pub struct TokenService {
    keys: RwLock<KeyRing>,
    validation: Validation,
    issuer: String,
    audience: String,
    leeway: u64,
}

impl TokenService {
    pub fn new(key: SecretBytes, issuer: &str, audience: &str, leeway: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        validation.leeway = leeway;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        Self {
            keys: RwLock::new(KeyRing {
                current: Arc::new(SigningKey::new(key)),
                previous: None,
            }),
            validation,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            leeway,
        }
    }

    fn ring(&self) -> std::sync::RwLockReadGuard<'_, KeyRing> {
        self.keys.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The `kid` new tokens carry.
    pub fn current_kid(&self) -> String {
        self.ring().current.kid.clone()
    }

    /// Makes `key` the signing key; the one it replaces keeps verifying until `grace_until` (s).
    /// Returns false when `key` already is the signing key.
    pub fn rotate(&self, key: SecretBytes, grace_until: u64) -> bool {
        let mut ring = self.keys.write().unwrap_or_else(|p| p.into_inner());
        if key_id(&key) == ring.current.kid {
            return false;
        }
        let old = std::mem::replace(&mut ring.current, Arc::new(SigningKey::new(key)));
        ring.previous = Some((old, grace_until));
        true
    }

    /// Accepts tokens of `key` (verify-only) until `until` (s), e.g. the key before a restart.
    pub fn accept_previous(&self, key: SecretBytes, until: u64) {
        let mut ring = self.keys.write().unwrap_or_else(|p| p.into_inner());
        ring.previous = Some((Arc::new(SigningKey::new(key)), until));
    }

    /// The key named `kid`, if it may verify at `now`.
    fn verifying_key(&self, kid: &str, now: u64) -> Option<Arc<SigningKey>> {
        let ring = self.ring();
        if ring.current.kid == kid {
            return Some(ring.current.clone());
        }
        match &ring.previous {
            Some((key, until)) if key.kid == kid && now <= *until => Some(key.clone()),
            _ => None,
        }
    }

    /// Issues a token of `kind` for (`user_id`, `session_id`) valid from `now` for `ttl` seconds.
    pub fn issue(
        &self,
        kind: TokenKind,
        user_id: &str,
        session_id: &str,
        now: u64,
        ttl: u64,
    ) -> Result<(String, Claims), TokenError> {
        let mut jti = [0u8; 16];
        fill_random(&mut jti).map_err(|_| TokenError::Issue)?;
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user_id.to_owned(),
            sid: session_id.to_owned(),
            jti: hex::encode(jti),
            iat: now,
            nbf: now,
            exp: now.saturating_add(ttl),
            typ: kind,
        };
        let key = self.ring().current.clone();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        let token =
            jsonwebtoken::encode(&header, &claims, &key.encoding).map_err(|_| TokenError::Issue)?;
        Ok((token, claims))
    }

    /// Verifies signature, algorithm, every claim and the token type.
    pub fn verify(&self, token: &str, expected: TokenKind, now: u64) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.verifying_key(kid, now))
            .ok_or(TokenError::Invalid)?;
        let data = jsonwebtoken::decode::<Claims>(token, &key.decoding, &self.validation)
            .map_err(|_| TokenError::Invalid)?;
        let claims = data.claims;
        if claims.iat > now.saturating_add(self.leeway) {
            return Err(TokenError::Invalid);
        }
        if claims.typ != expected {
            return Err(TokenError::WrongType);
        }
        Ok(claims)
    }
}

/// The signing key: `MCP_SESSIONS_JWT_SECRET` when set, else `key_file`, created with 32 random
/// bytes and mode 0600 on first start.
pub fn load_signing_key(
    env_secret: Option<String>,
    key_file: &Path,
) -> Result<SecretBytes, KeyError> {
    if let Some(secret) = env_secret {
        let bytes = secret.into_bytes();
        if bytes.len() < MIN_KEY_BYTES {
            return Err(KeyError::ShortSecret(bytes.len()));
        }
        return Ok(SecretBytes::new(bytes));
    }
    let io = |source| KeyError::Io {
        path: key_file.display().to_string(),
        source,
    };
    match std::fs::read(key_file) {
        Ok(bytes) if bytes.len() < MIN_KEY_BYTES => Err(KeyError::ShortFile {
            path: key_file.display().to_string(),
            len: bytes.len(),
        }),
        Ok(bytes) => Ok(SecretBytes::new(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = vec![0u8; MIN_KEY_BYTES];
            fill_random(&mut bytes).map_err(|_| KeyError::Random)?;
            if let Some(dir) = key_file.parent() {
                crate::files::ensure_private_dir(dir).map_err(io)?;
            }
            crate::files::write_private(key_file, &bytes).map_err(io)?;
            Ok(SecretBytes::new(bytes))
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> TokenService {
        TokenService::new(
            SecretBytes::new(vec![7u8; 32]),
            "mcp-sessions",
            "mcp-sessions",
            5,
        )
    }

    fn now() -> u64 {
        crate::clock::now_ms() / 1000
    }

    fn header(alg: &str, key: &[u8]) -> String {
        format!(
            r#"{{"alg":"{alg}","typ":"JWT","kid":"{}"}}"#,
            key_id(&SecretBytes::new(key.to_vec()))
        )
    }

    fn forge(header: &str, claims: &serde_json::Value, key: &[u8]) -> String {
        use base64::Engine;
        use hmac::{Hmac, Mac};
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let signing_input = format!("{}.{}", b64.encode(header), b64.encode(claims.to_string()));
        let mut mac = match Hmac::<sha2::Sha256>::new_from_slice(key) {
            Ok(mac) => mac,
            Err(_) => return String::new(),
        };
        mac.update(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            b64.encode(mac.finalize().into_bytes())
        )
    }

    fn claims_json(now: u64) -> serde_json::Value {
        serde_json::json!({"iss":"mcp-sessions","aud":"mcp-sessions","sub":"u","sid":"s","jti":"j",
            "iat":now,"nbf":now,"exp":now+60,"typ":"access"})
    }

    #[test]
    fn round_trip_and_type_check() -> Result<(), TokenError> {
        let svc = service();
        let (token, _) = svc.issue(TokenKind::Refresh, "user", "sid", now(), 60)?;
        assert!(svc.verify(&token, TokenKind::Refresh, now()).is_ok());
        assert!(matches!(
            svc.verify(&token, TokenKind::Access, now()),
            Err(TokenError::WrongType)
        ));
        Ok(())
    }

    #[test]
    fn hand_signed_hs256_is_accepted_and_others_refused() {
        let svc = service();
        let now = now();
        let good = forge(&header("HS256", &[7u8; 32]), &claims_json(now), &[7u8; 32]);
        assert!(
            svc.verify(&good, TokenKind::Access, now).is_ok(),
            "the forging helper must be right"
        );
        let hs512 = forge(&header("HS512", &[7u8; 32]), &claims_json(now), &[7u8; 32]);
        assert!(svc.verify(&hs512, TokenKind::Access, now).is_err());
        let none = format!(
            "{}.",
            good.rsplit_once('.').map(|(a, _)| a).unwrap_or_default()
        );
        assert!(svc.verify(&none, TokenKind::Access, now).is_err());
        let wrong_key = forge(&header("HS256", &[7u8; 32]), &claims_json(now), &[8u8; 32]);
        assert!(svc.verify(&wrong_key, TokenKind::Access, now).is_err());
    }

    #[test]
    fn every_claim_is_required_and_typed() {
        let svc = service();
        let now = now();
        for claim in [
            "iss", "aud", "sub", "sid", "jti", "iat", "nbf", "exp", "typ",
        ] {
            let mut claims = claims_json(now);
            if let Some(map) = claims.as_object_mut() {
                map.remove(claim);
            }
            let token = forge(&header("HS256", &[7u8; 32]), &claims, &[7u8; 32]);
            assert!(
                svc.verify(&token, TokenKind::Access, now).is_err(),
                "missing {claim} accepted"
            );
        }
        for (claim, value) in [
            ("exp", serde_json::json!("9999999999")),
            ("nbf", serde_json::json!("0")),
        ] {
            let mut claims = claims_json(now);
            claims[claim] = value;
            let token = forge(&header("HS256", &[7u8; 32]), &claims, &[7u8; 32]);
            assert!(
                svc.verify(&token, TokenKind::Access, now).is_err(),
                "string {claim} accepted"
            );
        }
    }

    #[test]
    fn time_claims_are_enforced() {
        let svc = service();
        let now = now();
        let mut expired = claims_json(now);
        expired["exp"] = serde_json::json!(now - 60);
        let mut future_nbf = claims_json(now);
        future_nbf["nbf"] = serde_json::json!(now + 60);
        let mut future_iat = claims_json(now);
        future_iat["iat"] = serde_json::json!(now + 60);
        for claims in [expired, future_nbf, future_iat] {
            let token = forge(&header("HS256", &[7u8; 32]), &claims, &[7u8; 32]);
            assert!(
                svc.verify(&token, TokenKind::Access, now).is_err(),
                "{claims}"
            );
        }
    }

    #[test]
    fn short_secret_is_refused() {
        let dir = std::env::temp_dir();
        assert!(matches!(
            load_signing_key(Some("too short".into()), &dir.join("unused.key")),
            Err(KeyError::ShortSecret(9))
        ));
    }

    #[test]
    fn rotation_keeps_the_previous_key_for_its_grace_and_refuses_unknown_kids()
    -> Result<(), TokenError> {
        let svc = service();
        let now = now();
        let (old_token, _) = svc.issue(TokenKind::Access, "u", "s", now, 60)?;
        assert!(svc.rotate(SecretBytes::new(vec![9u8; 32]), now + 10));
        let (new_token, _) = svc.issue(TokenKind::Access, "u", "s", now, 60)?;
        assert!(svc.verify(&new_token, TokenKind::Access, now).is_ok());
        assert!(
            svc.verify(&old_token, TokenKind::Access, now).is_ok(),
            "refused within the grace period"
        );
        assert!(
            svc.verify(&old_token, TokenKind::Access, now + 11).is_err(),
            "accepted after the grace period"
        );
        let no_kid = forge(
            r#"{"alg":"HS256","typ":"JWT"}"#,
            &claims_json(now),
            &[9u8; 32],
        );
        assert!(
            svc.verify(&no_kid, TokenKind::Access, now).is_err(),
            "a token without kid was accepted"
        );
        let unknown = forge(
            r#"{"alg":"HS256","typ":"JWT","kid":"0000000000000000"}"#,
            &claims_json(now),
            &[9u8; 32],
        );
        assert!(
            svc.verify(&unknown, TokenKind::Access, now).is_err(),
            "an unknown kid was accepted"
        );
        Ok(())
    }
}
