//! Users and their credentials: API keys (configured as SHA-256 digests) and signed tokens
//! (HMAC-SHA256 JWTs).
//!
//! Why SHA-256 and not a password hash (argon2, bcrypt): API keys are generated, not chosen
//! by people; at 256 bits of randomness a fast hash leaks nothing an attacker could brute
//! force, and hashing on every ticket request stays cheap (a slow hash on an unauthenticated
//! endpoint is a denial-of-service lever). The digest of a presented key is compared with
//! every configured digest in constant time (`subtle`), so response timing says nothing
//! about which digest, or which prefix of one, was close.
//!
//! JWTs are verified by the `jsonwebtoken` crate with the algorithm pinned to HS256 (no
//! `none`, no algorithm confusion), `exp` required, and `sub` naming a configured user:
//! the token proves who the user is, the configuration says what the user may see.
//!
//! Neither keys nor tokens are ever logged or kept; only the user's name is.

use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::entitlements::Access;

/// A SHA-256 digest of an API key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyDigest(pub [u8; 32]);

impl KeyDigest {
    /// The digest of a presented key.
    pub fn of(key: &str) -> KeyDigest {
        KeyDigest(Sha256::digest(key.as_bytes()).into())
    }

    /// Parses 64 hex digits (either case).
    pub fn parse_hex(s: &str) -> Result<KeyDigest, String> {
        let b = s.as_bytes();
        if b.len() != 64 {
            return Err(format!(
                "must be 64 hex digits (a SHA-256 digest), not {} characters; \
                 make one with: printf %s \"$KEY\" | sha256sum",
                b.len()
            ));
        }
        let mut out = [0u8; 32];
        for (i, pair) in b.chunks(2).enumerate() {
            let hi = hex_digit(pair[0]);
            let lo = hex_digit(pair[1]);
            match (hi, lo) {
                (Some(h), Some(l)) => out[i] = h << 4 | l,
                _ => return Err("must be 64 hex digits (0-9, a-f)".into()),
            }
        }
        Ok(KeyDigest(out))
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A digest is not a secret, but nothing is gained by printing it.
        f.write_str("KeyDigest(..)")
    }
}

/// A secret that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// One configured user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Digest of the user's API key; `None` for users who only sign in with tokens.
    pub key: Option<KeyDigest>,
    pub access: Arc<Access>,
}

/// Why credentials were refused (`POST /auth/ticket` answers 401 with the wire name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("no credentials: send Authorization: Bearer <API key or token>")]
    Missing,
    #[error("the Authorization header is not `Bearer <credentials>`")]
    Malformed,
    #[error("invalid credentials")]
    Invalid,
    #[error("the token has expired")]
    Expired,
}

impl CredentialError {
    pub const fn as_str(self) -> &'static str {
        match self {
            CredentialError::Missing => "credentials_missing",
            CredentialError::Malformed => "credentials_malformed",
            CredentialError::Invalid => "credentials_invalid",
            CredentialError::Expired => "token_expired",
        }
    }
}

/// The configured users (immutable; a reload builds a new one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Users {
    pub users: Vec<User>,
    /// HS256 secret for signed tokens; `None`: tokens are not accepted.
    pub jwt_secret: Option<Secret>,
    /// Clock skew tolerated on `exp`, seconds.
    pub jwt_leeway_s: u64,
}

#[derive(serde::Deserialize)]
struct Claims {
    sub: String,
}

/// Longest credential accepted; keys and tokens are far shorter.
const MAX_CREDENTIAL_LEN: usize = 4096;

impl Users {
    /// The user named `name`.
    pub fn get(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.access.user == name)
    }

    /// Who the `Authorization` header value proves to be.
    pub fn authenticate(
        &self,
        authorization: Option<&[u8]>,
    ) -> Result<Arc<Access>, CredentialError> {
        let raw = authorization.ok_or(CredentialError::Missing)?;
        let value = std::str::from_utf8(raw).map_err(|_| CredentialError::Malformed)?;
        let (scheme, credential) = value
            .trim()
            .split_once(' ')
            .ok_or(CredentialError::Malformed)?;
        let credential = credential.trim();
        if !scheme.eq_ignore_ascii_case("bearer")
            || credential.is_empty()
            || credential.len() > MAX_CREDENTIAL_LEN
        {
            return Err(CredentialError::Malformed);
        }
        if looks_like_jwt(credential) && self.jwt_secret.is_some() {
            return self.verify_token(credential);
        }
        self.verify_key(credential)
    }

    /// Finds the user whose key digest matches, comparing with every user in constant time.
    fn verify_key(&self, key: &str) -> Result<Arc<Access>, CredentialError> {
        let presented = KeyDigest::of(key);
        let mut found: Option<&User> = None;
        for u in &self.users {
            if let Some(d) = &u.key {
                let eq: bool = d.0.ct_eq(&presented.0).into();
                if eq && found.is_none() {
                    found = Some(u);
                }
            }
        }
        found
            .map(|u| u.access.clone())
            .ok_or(CredentialError::Invalid)
    }

    fn verify_token(&self, token: &str) -> Result<Arc<Access>, CredentialError> {
        use jsonwebtoken::errors::ErrorKind;
        use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
        let secret = self.jwt_secret.as_ref().ok_or(CredentialError::Invalid)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = self.jwt_leeway_s;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let key = DecodingKey::from_secret(&secret.0).map_err(|_| CredentialError::Invalid)?;
        let data = decode::<Claims>(token, &key, &validation).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => CredentialError::Expired,
            _ => CredentialError::Invalid,
        })?;
        self.get(&data.claims.sub)
            .map(|u| u.access.clone())
            .ok_or(CredentialError::Invalid)
    }
}

/// Three base64url segments separated by dots, the first starting like a JSON object.
fn looks_like_jwt(s: &str) -> bool {
    s.starts_with("eyJ") && s.bytes().filter(|b| *b == b'.').count() == 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Users {
        let mut a = Access::anonymous();
        a.user = "alice".into();
        let mut b = Access::anonymous();
        b.user = "bob".into();
        Users {
            users: vec![
                User {
                    key: Some(KeyDigest::of("alice-key")),
                    access: Arc::new(a),
                },
                User {
                    key: None,
                    access: Arc::new(b),
                },
            ],
            jwt_secret: Some(Secret(b"0123456789abcdef0123456789abcdef".to_vec())),
            jwt_leeway_s: 0,
        }
    }

    fn token(sub: &str, exp: i64, secret: &[u8]) -> String {
        use jsonwebtoken::{encode, EncodingKey, Header};
        encode(
            &Header::default(),
            &serde_json::json!({"sub": sub, "exp": exp}),
            &EncodingKey::from_secret(secret).unwrap(),
        )
        .unwrap()
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    #[test]
    fn api_keys_and_tokens_authenticate() {
        let u = users();
        let auth = |v: &str| u.authenticate(Some(v.as_bytes()));
        assert_eq!(auth("Bearer alice-key").unwrap().user, "alice");
        assert_eq!(auth("bearer   alice-key ").unwrap().user, "alice");
        assert_eq!(auth("Bearer nope"), Err(CredentialError::Invalid));
        assert_eq!(u.authenticate(None), Err(CredentialError::Missing));
        assert_eq!(auth("Basic abc"), Err(CredentialError::Malformed));
        assert_eq!(auth("Bearer"), Err(CredentialError::Malformed));
        assert_eq!(auth("Bearer "), Err(CredentialError::Malformed));
        let secret = b"0123456789abcdef0123456789abcdef";
        let t = token("bob", now() + 60, secret);
        assert_eq!(auth(&format!("Bearer {t}")).unwrap().user, "bob");
        let t = token("bob", now() - 60, secret);
        assert_eq!(auth(&format!("Bearer {t}")), Err(CredentialError::Expired));
        let t = token("bob", now() + 60, b"another secret, 32 bytes long!!!");
        assert_eq!(auth(&format!("Bearer {t}")), Err(CredentialError::Invalid));
        let t = token("mallory", now() + 60, secret);
        assert_eq!(auth(&format!("Bearer {t}")), Err(CredentialError::Invalid));
    }

    #[test]
    fn unsigned_tokens_are_refused() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine as _;
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let c = URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"bob","exp":{}}}"#, now() + 60));
        let u = users();
        let v = format!("Bearer {h}.{c}.");
        assert_eq!(
            u.authenticate(Some(v.as_bytes())),
            Err(CredentialError::Invalid)
        );
    }

    #[test]
    fn digests_parse_from_hex() {
        let hex = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";
        assert_eq!(KeyDigest::parse_hex(hex).unwrap(), KeyDigest::of("foo"));
        assert_eq!(
            KeyDigest::parse_hex(&hex.to_uppercase()).unwrap(),
            KeyDigest::of("foo")
        );
        assert!(KeyDigest::parse_hex(&hex[1..]).is_err());
        assert!(KeyDigest::parse_hex(&format!("{}g", &hex[1..])).is_err());
    }
}
