//! API key strings: making them, and what is stored in their place.
//!
//! A key is `ew-` and 48 hex digits (192 random bits from the OS). Only its
//! SHA-256 is stored; its first 10 characters are kept to recognise it.

use sha2::{Digest, Sha256};

/// What every key starts with.
pub const KEY_PREFIX: &str = "ew-";

/// A newly made key: the secret (shown once) and what is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    /// The key to hand to the client.
    pub secret: String,
    /// Its public id (`key_` and 12 hex digits).
    pub id: String,
    /// Its first characters, for recognising it in lists.
    pub prefix: String,
    /// SHA-256 of the secret, hex.
    pub hash: String,
}

/// Makes a new random key.
pub fn generate() -> Result<NewKey, getrandom::Error> {
    let mut secret = [0u8; 24];
    getrandom::fill(&mut secret)?;
    let mut id = [0u8; 6];
    getrandom::fill(&mut id)?;
    let secret = format!("{KEY_PREFIX}{}", hex(&secret));
    Ok(NewKey { id: format!("key_{}", hex(&id)), prefix: display_prefix(&secret), hash: hash(&secret), secret })
}

/// SHA-256 of a presented key, hex: what the key table is searched by.
pub fn hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// The first characters of a key, safe to show and log.
pub fn display_prefix(secret: &str) -> String {
    let cut: String = secret.chars().take(10).collect();
    format!("{cut}…")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_prefixed_and_stored_only_as_hashes() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a.secret, b.secret);
        assert!(a.secret.starts_with("ew-") && a.secret.len() == 51, "{}", a.secret);
        assert_eq!(a.hash, hash(&a.secret));
        assert_eq!(a.hash.len(), 64);
        assert!(!a.hash.contains(&a.secret[3..]));
        assert!(a.prefix.starts_with(&a.secret[..10]));
        assert!(a.id.starts_with("key_") && a.id.len() == 16);
    }
}
