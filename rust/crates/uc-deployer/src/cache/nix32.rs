//! Nix's base-32 encoding of hashes ("nix32"), used in narinfo files and
//! signature fingerprints, and conversion from SRI (`sha256-<base64>`).

use base64::Engine;

const ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

pub fn encode(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return String::new();
    }
    let len = (bytes.len() * 8 - 1) / 5 + 1;
    let mut out = String::with_capacity(len);
    for n in (0..len).rev() {
        let bit = n * 5;
        let (i, j) = (bit / 8, bit % 8);
        let low = u16::from(bytes[i]) >> j;
        let high = bytes.get(i + 1).map_or(0, |b| u16::from(*b) << (8 - j));
        out.push(char::from(ALPHABET[usize::from((low | high) & 0x1f)]));
    }
    out
}

/// `sha256:<nix32>` from any form Nix prints a SHA-256 in: that form itself,
/// or SRI `sha256-<base64>`.
pub fn sha256_to_nix32(hash: &str) -> Option<String> {
    if let Some(rest) = hash.strip_prefix("sha256:") {
        return (rest.len() == 52 && rest.bytes().all(|b| ALPHABET.contains(&b)))
            .then(|| hash.to_owned());
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(hash.strip_prefix("sha256-")?)
        .ok()?;
    (raw.len() == 32).then(|| format!("sha256:{}", encode(&raw)))
}

/// The file stem of a NAR in the cache: its hash without the algorithm.
pub fn nar_file_stem(nar_hash: &str) -> String {
    nar_hash.trim_start_matches("sha256:").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_what_nix_prints() {
        // `nix path-info --json` and `nix-store -q --hash` on the same path.
        assert_eq!(
            sha256_to_nix32("sha256-EFUdrtf6Rn0LWIJufrmg8q99aT3jGfLvd1//zaJEufY=").as_deref(),
            Some("sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h")
        );
        let already = "sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h";
        assert_eq!(sha256_to_nix32(already).as_deref(), Some(already));
    }

    #[test]
    fn rejects_other_hashes() {
        assert_eq!(sha256_to_nix32("sha1-AAAA"), None);
        assert_eq!(sha256_to_nix32("sha256-AAAA"), None);
        assert_eq!(sha256_to_nix32("sha256:tooshort"), None);
    }

    #[test]
    fn encodes_lengths() {
        assert_eq!(encode(&[]), "");
        assert_eq!(encode(&[0u8; 20]).len(), 32);
        assert_eq!(encode(&[0xffu8; 32]).len(), 52);
    }
}
