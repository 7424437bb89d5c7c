use super::*;
use crate::KeySet;

const NOW: u64 = 1_800_000_000;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn claims() -> Claims {
    Claims {
        iss: ISSUER.into(),
        sub: "user:alice".into(),
        tenants: vec!["acme".into()],
        iat: NOW - 10,
        nbf: NOW - 10,
        exp: NOW + 900,
        jti: "t-1".into(),
        cred: "password-alice".into(),
    }
}

fn keyset() -> KeySet {
    let mut set = KeySet::default();
    set.insert_key("k1", key(1).verifying_key());
    set.insert_key("k2", key(2).verifying_key());
    set
}

/// A token with `header` and `claims` as given, signed by key 1.
fn raw(header: &str, claims: &str) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let signature = key(1).sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

#[test]
fn a_token_verifies_with_its_key_and_gives_back_its_claims() {
    let token = issue(&key(1), "k1", &claims());
    let verified = keyset().verify(&token, NOW).unwrap();
    assert_eq!(
        verified,
        Verified {
            kid: "k1".into(),
            claims: claims()
        }
    );
    // the same claims signed by the other published key verify too
    assert!(keyset()
        .verify(&issue(&key(2), "k2", &claims()), NOW)
        .is_ok());
}

#[test]
fn refusals_are_typed() {
    let good = claims();
    let with = |f: &dyn Fn(&mut Claims)| {
        let mut c = good.clone();
        f(&mut c);
        issue(&key(1), "k1", &c)
    };
    let claims_json = serde_json::to_string(&good).unwrap();
    let mut revoked = keyset();
    revoked.revoke_token("t-1", NOW + 900);
    let mut cred_revoked = keyset();
    cred_revoked.revoke_credential("password-alice", NOW + 900);
    let table: Vec<(&str, KeySet, String, TokenError)> = vec![
        (
            "expired",
            keyset(),
            with(&|c| c.exp = NOW),
            TokenError::Expired { exp: NOW, now: NOW },
        ),
        (
            "not yet valid",
            keyset(),
            with(&|c| c.nbf = NOW + 6),
            TokenError::NotYetValid {
                nbf: NOW + 6,
                now: NOW,
            },
        ),
        (
            "unknown kid",
            keyset(),
            issue(&key(1), "k9", &good),
            TokenError::UnknownKey { kid: "k9".into() },
        ),
        (
            "forged: another key under k1",
            keyset(),
            issue(&key(3), "k1", &good),
            TokenError::BadSignature { kid: "k1".into() },
        ),
        (
            "wrong key: k2's token named k1",
            keyset(),
            issue(&key(2), "k1", &good),
            TokenError::BadSignature { kid: "k1".into() },
        ),
        (
            "alg none",
            keyset(),
            raw(r#"{"alg":"none","kid":"k1","typ":"JWT"}"#, &claims_json),
            TokenError::UnsupportedHeader,
        ),
        (
            "alg HS256",
            keyset(),
            raw(r#"{"alg":"HS256","kid":"k1","typ":"JWT"}"#, &claims_json),
            TokenError::UnsupportedHeader,
        ),
        (
            "extra header",
            keyset(),
            raw(
                r#"{"alg":"EdDSA","kid":"k1","typ":"JWT","jku":"x"}"#,
                &claims_json,
            ),
            TokenError::Malformed("the header is not base64url JSON"),
        ),
        (
            "extra claim",
            keyset(),
            raw(
                r#"{"alg":"EdDSA","kid":"k1","typ":"JWT"}"#,
                &claims_json.replace("\"iss\"", "\"admin\":true,\"iss\""),
            ),
            TokenError::Malformed("the claims are not base64url JSON of uc-iam's claims"),
        ),
        (
            "other issuer",
            keyset(),
            with(&|c| c.iss = "elsewhere".into()),
            TokenError::Malformed("the issuer is not uc-iam"),
        ),
        (
            "revoked token",
            revoked,
            with(&|_| {}),
            TokenError::Revoked { jti: "t-1".into() },
        ),
        (
            "revoked credential",
            cred_revoked,
            with(&|_| {}),
            TokenError::CredentialRevoked {
                cred: "password-alice".into(),
            },
        ),
        (
            "empty",
            keyset(),
            String::new(),
            TokenError::Malformed("not three dot-separated parts"),
        ),
        (
            "four parts",
            keyset(),
            format!("{}.x", with(&|_| {})),
            TokenError::Malformed("not three dot-separated parts"),
        ),
        (
            "too long",
            keyset(),
            "a".repeat(MAX_TOKEN_LEN + 1),
            TokenError::Malformed("longer than 8 KiB"),
        ),
    ];
    for (what, set, token, expected) in table {
        assert_eq!(set.verify(&token, NOW), Err(expected), "{what}");
    }
}

#[test]
fn a_revocation_lapses_at_its_until() {
    let mut set = keyset();
    set.revoke_token("t-1", NOW);
    assert!(set.verify(&issue(&key(1), "k1", &claims()), NOW).is_ok());
}

/// xorshift64: deterministic noise for the mutation test.
struct Noise(u64);
impl Noise {
    fn next(&mut self, below: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % below as u64) as usize
    }
}

#[test]
fn mutated_and_random_tokens_never_panic_nor_verify() {
    let set = keyset();
    let good = issue(&key(1), "k1", &claims());
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/{}\":";
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    for round in 0..1_500 {
        let mut bytes = good.clone().into_bytes();
        for _ in 0..=noise.next(3) {
            if bytes.is_empty() {
                break;
            }
            let at = noise.next(bytes.len());
            match noise.next(4) {
                0 => bytes[at] = alphabet[noise.next(alphabet.len())],
                1 => {
                    bytes.remove(at);
                }
                2 => bytes.insert(at, alphabet[noise.next(alphabet.len())]),
                _ => bytes.truncate(at),
            }
        }
        let mutated = String::from_utf8(bytes).unwrap();
        if mutated != good {
            assert!(
                set.verify(&mutated, NOW).is_err(),
                "round {round}: {mutated}"
            );
        }
        let random: String = (0..noise.next(300))
            .map(|_| alphabet[noise.next(alphabet.len())] as char)
            .collect();
        assert!(set.verify(&random, NOW).is_err(), "{random}");
    }
}

#[test]
fn public_keys_round_trip_in_their_published_form() {
    let public = key(4).verifying_key();
    let text = encode_public_key(&public);
    assert_eq!(text.len(), 43);
    assert_eq!(decode_public_key(&text), Some(public));
    for bad in ["", "abc", &"A".repeat(44)] {
        assert_eq!(decode_public_key(bad), None, "{bad}");
    }
}
