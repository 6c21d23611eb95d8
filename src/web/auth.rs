//! HTTP basic authentication against bcrypt hashes.
//!
//! bcrypt is slow on purpose (~70 ms at cost 10), too slow for every scrape:
//! successful checks are remembered, keyed by a SHA-256 of the user, the hash
//! and the password (never the password itself), so a scraper with the right
//! credentials pays once. Failed checks are not remembered; they run one at a
//! time on a blocking thread, so guessing costs the guesser and never more
//! than one core here, and never stalls the async runtime. Unknown users are
//! checked against a configured hash all the same, so that timing does not
//! tell which users exist.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::http::{header, HeaderMap};
use base64::Engine;

use super::config::BcryptHash;

/// Remembered successful checks; cleared when full. There are as many
/// entries as (user, password) pairs that work, so this is never reached in
/// practice; it only bounds memory.
const CACHE_CAPACITY: usize = 1024;

/// Basic-auth credentials are short; longer headers are refused unread.
const MAX_AUTHORIZATION_BYTES: usize = 4096;

#[derive(Default)]
pub struct Verifier {
    cache: Mutex<HashSet<[u8; 32]>>,
    /// One bcrypt at a time.
    bcrypt: Arc<Mutex<()>>,
}

impl Verifier {
    /// Whether the request's `Authorization: Basic` names a user with the
    /// right password.
    pub async fn check(&self, users: &BTreeMap<String, BcryptHash>, headers: &HeaderMap) -> bool {
        let Some((user, password)) = basic_credentials(headers) else {
            return false;
        };
        let (known, hash) = match users.get(&user) {
            Some(h) => (true, h.0.clone()),
            // Same work as a wrong password, same answer as none.
            None => match users.values().next() {
                Some(h) => (false, h.0.clone()),
                None => return false,
            },
        };
        let key = cache_key(&user, &hash, &password);
        if known && self.lock_cache().contains(&key) {
            return true;
        }
        let gate = self.bcrypt.clone();
        let ok = tokio::task::spawn_blocking(move || {
            let _one_at_a_time = gate.lock().unwrap_or_else(|e| e.into_inner());
            // Passwords over 72 bytes are refused, not truncated.
            bcrypt::non_truncating_verify(password.as_bytes(), &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if ok && known {
            let mut cache = self.lock_cache();
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
            cache.insert(key);
        }
        ok && known
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// SHA-256 over the length-prefixed user, hash and password.
fn cache_key(user: &str, hash: &str, password: &str) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [user, hash, password] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The user and password of an `Authorization: Basic` header.
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    if value.len() > MAX_AUTHORIZATION_BYTES {
        return None;
    }
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn auth(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    fn basic(user_pass: &str) -> HeaderMap {
        let enc = base64::engine::general_purpose::STANDARD.encode(user_pass);
        auth(&format!("Basic {enc}"))
    }

    #[test]
    fn parses_basic_credentials() {
        assert_eq!(
            basic_credentials(&basic("alice:pa:ss")),
            Some(("alice".into(), "pa:ss".into()))
        );
        assert_eq!(basic_credentials(&basic("nocolon")), None);
        assert_eq!(basic_credentials(&auth("Bearer abc")), None);
        assert_eq!(basic_credentials(&auth("Basic !!!")), None);
        assert_eq!(basic_credentials(&HeaderMap::new()), None);
        let long = "a".repeat(MAX_AUTHORIZATION_BYTES + 1);
        assert_eq!(basic_credentials(&basic(&format!("u:{long}"))), None);
    }

    #[tokio::test]
    async fn checks_and_caches_only_successes() {
        let hash = bcrypt::hash("right", 4).unwrap();
        let users = BTreeMap::from([("alice".to_string(), BcryptHash(hash))]);
        let v = Verifier::default();
        assert!(!v.check(&users, &basic("alice:wrong")).await);
        assert!(v.lock_cache().is_empty());
        assert!(!v.check(&users, &basic("bob:right")).await);
        assert!(!v.check(&users, &HeaderMap::new()).await);
        assert!(v.check(&users, &basic("alice:right")).await);
        assert_eq!(v.lock_cache().len(), 1);
        assert!(v.check(&users, &basic("alice:right")).await);
        assert!(!v.check(&BTreeMap::new(), &basic("alice:right")).await);
        let long = format!("alice:{}", "x".repeat(100));
        assert!(!v.check(&users, &basic(&long)).await);
    }
}
