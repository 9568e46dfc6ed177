//! The HMAC challenge/response handshake of CPython's `multiprocessing.connection`,
//! byte for byte.
//!
//! The serving side sends `#CHALLENGE#` + `{sha256}` + 40 random bytes; the other side
//! answers with `{sha256}` + HMAC-SHA256(key, whole message) (3.12+), or — a 3.11
//! peer, which knows no prefixes — with the bare 16-byte HMAC-MD5 of the whole message.
//! A 3.11 server sends a bare 20-byte challenge, which we answer with bare HMAC-MD5.
//! The verdict is `#WELCOME#` or `#FAILURE#`. Digests are compared in constant time.

use super::Connection;
use crate::error::{Error, Result};
use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;

const CHALLENGE: &[u8] = b"#CHALLENGE#";
const WELCOME: &[u8] = b"#WELCOME#";
const FAILURE: &[u8] = b"#FAILURE#";
/// Random bytes in a challenge (after the `{digest}` prefix); must be > 20.
const MESSAGE_LENGTH: usize = 40;
/// A 3.11 server's challenge length (bare HMAC-MD5 protocol).
const MD5ONLY_MESSAGE_LENGTH: usize = 20;
const MD5_DIGEST_LEN: usize = 16;
const ALLOWED_DIGESTS: [&str; 5] = ["md5", "sha256", "sha384", "sha3_256", "sha3_384"];
const MAX_DIGEST_LEN: usize = 8;

fn auth_err(msg: impl Into<String>) -> Error {
    Error::Authentication(msg.into())
}

fn hmac_digest(name: &str, key: &[u8], message: &[u8]) -> Result<Vec<u8>> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8]) -> Vec<u8> {
        let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key)
            .expect("HMAC accepts keys of any length");
        m.update(message);
        m.finalize().into_bytes().to_vec()
    }
    match name {
        "md5" => Ok(run::<Hmac<md5::Md5>>(key, message)),
        "sha256" => Ok(run::<Hmac<sha2::Sha256>>(key, message)),
        "sha384" => Ok(run::<Hmac<sha2::Sha384>>(key, message)),
        other => Err(auth_err(format!("digest {other:?} unsupported"))),
    }
}

/// Splits `{digest}payload`; a 16- or 20-byte message is the legacy (3.11) form and
/// gives an empty digest name.
fn digest_name_and_payload(message: &[u8]) -> Result<(&str, &[u8])> {
    if message.len() == MD5ONLY_MESSAGE_LENGTH || message.len() == MD5_DIGEST_LEN {
        return Ok(("", message));
    }
    if message.first() == Some(&b'{') {
        let end = message.len().min(MAX_DIGEST_LEN + 2);
        if let Some(pos) = message[1..end].iter().position(|&c| c == b'}') {
            let curly = pos + 1;
            if let Ok(name) = std::str::from_utf8(&message[1..curly]) {
                if let Some(known) = ALLOWED_DIGESTS.iter().find(|d| **d == name) {
                    return Ok((known, &message[curly + 1..]));
                }
            }
        }
    }
    Err(auth_err(format!(
        "unsupported message length, missing digest prefix, or unsupported digest \
         (message of {} bytes)",
        message.len()
    )))
}

/// The answer to a challenge `message` (CPython's `_create_response`).
fn create_response(key: &[u8], message: &[u8]) -> Result<Vec<u8>> {
    let (name, _) = digest_name_and_payload(message)?;
    if name.is_empty() {
        return hmac_digest("md5", key, message);
    }
    let mac = hmac_digest(name, key, message)?;
    let mut out = format!("{{{name}}}").into_bytes();
    out.extend_from_slice(&mac);
    Ok(out)
}

/// Checks the answer to our challenge (CPython's `_verify_challenge`), in constant time.
fn verify(key: &[u8], message: &[u8], response: &[u8]) -> Result<()> {
    let (name, mac) = digest_name_and_payload(response)?;
    let name = if name.is_empty() { "md5" } else { name };
    let expected = hmac_digest(name, key, message)?;
    if expected.len() != mac.len() {
        return Err(auth_err(format!(
            "expected {name:?} of length {} got {}",
            expected.len(),
            mac.len()
        )));
    }
    if !bool::from(expected.ct_eq(mac)) {
        return Err(auth_err("digest received was wrong"));
    }
    Ok(())
}

fn recv_short(conn: &Connection) -> Result<Vec<u8>> {
    // exact: a caller may hand the socket to its own reader after the handshake
    match conn.recv_bytes_exact(256) {
        Err(Error::MessageTooLarge { len, .. }) => Err(auth_err(format!(
            "protocol error: handshake message of {len} bytes"
        ))),
        other => other,
    }
}

/// Python's `deliver_challenge(connection, authkey)`: the serving side's half. Sends a
/// `{sha256}` challenge, checks the answer (either a 3.12+ `{digest}` answer or a 3.11
/// bare HMAC-MD5), then sends `#WELCOME#` or `#FAILURE#`. A wrong answer is
/// [`Error::Authentication`].
///
/// ```
/// let (a, b) = mp::pipe(true)?;
/// let t = std::thread::spawn(move || mp::connection::answer_challenge(&b, b"secret"));
/// mp::connection::deliver_challenge(&a, b"secret")?;
/// t.join().unwrap()?;
/// # Ok::<(), mp::Error>(())
/// ```
pub fn deliver_challenge(conn: &Connection, authkey: &[u8]) -> Result<()> {
    let mut random = [0u8; MESSAGE_LENGTH];
    getrandom::fill(&mut random).map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
    let mut message = b"{sha256}".to_vec();
    message.extend_from_slice(&random);
    conn.send_bytes(&[CHALLENGE, &message].concat())?;
    let response = recv_short(conn)?;
    match verify(authkey, &message, &response) {
        Ok(()) => conn.send_bytes(WELCOME),
        Err(e) => {
            let _ = conn.send_bytes(FAILURE);
            Err(e)
        }
    }
}

/// Python's `answer_challenge(connection, authkey)`: the connecting side's half.
/// Answers the peer's challenge in the form the peer speaks (3.12+ `{digest}` or 3.11
/// HMAC-MD5) and expects `#WELCOME#`; anything else is [`Error::Authentication`].
pub fn answer_challenge(conn: &Connection, authkey: &[u8]) -> Result<()> {
    let message = recv_short(conn)?;
    let Some(message) = message.strip_prefix(CHALLENGE) else {
        return Err(auth_err("protocol error: expected a challenge"));
    };
    if message.len() < MD5ONLY_MESSAGE_LENGTH {
        return Err(auth_err(format!(
            "challenge too short: {} bytes",
            message.len()
        )));
    }
    let digest = create_response(authkey, message)?;
    conn.send_bytes(&digest)?;
    let response = recv_short(conn)?;
    if response != WELCOME {
        return Err(auth_err("digest sent was rejected"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_and_modern_forms() {
        let key = b"k";
        // 3.11 server challenge: 20 bare bytes → bare md5 answer
        let legacy = [1u8; 20];
        let r = create_response(key, &legacy).unwrap();
        assert_eq!(r.len(), 16);
        verify(key, &legacy, &r).unwrap();
        // modern
        let mut m = b"{sha256}".to_vec();
        m.extend_from_slice(&[2u8; 40]);
        let r = create_response(key, &m).unwrap();
        assert!(r.starts_with(b"{sha256}"));
        assert_eq!(r.len(), 8 + 32);
        verify(key, &m, &r).unwrap();
        // a 3.11 client answers our prefixed challenge with bare md5 of the whole thing
        let md5 = hmac_digest("md5", key, &m).unwrap();
        verify(key, &m, &md5).unwrap();
        assert!(verify(b"other", &m, &md5).is_err());
        assert!(verify(key, &m, b"{sha256}short").is_err());
        assert!(verify(key, &m, b"garbage that is long enough").is_err());
        assert!(create_response(key, b"{sha3_256}0123456789012345678901234").is_err());
    }

    // not under Miri (.ci/miri): sends over a socket (sendmsg), which Miri does not model
    #[cfg(not(miri))]
    #[test]
    fn wrong_key_fails_both_sides() {
        let (a, b) = crate::pipe(true).unwrap();
        let t = std::thread::spawn(move || answer_challenge(&b, b"bad"));
        assert!(matches!(
            deliver_challenge(&a, b"good"),
            Err(Error::Authentication(_))
        ));
        assert!(matches!(t.join().unwrap(), Err(Error::Authentication(_))));
    }
}
