//! Member and cluster ids: stable hashes (FNV-1a 64) of what identifies
//! them, like etcd's, so every member computes the same ids from the
//! rendered config.

fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.iter().chain(&[0u8]) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

/// From the member's peer URLs (any order) and the cluster token.
pub fn member_id(peer_urls: &[String], token: &str) -> u64 {
    let mut urls: Vec<&str> = peer_urls.iter().map(String::as_str).collect();
    urls.sort_unstable();
    let mut parts: Vec<&[u8]> = urls.iter().map(|u| u.as_bytes()).collect();
    parts.push(token.as_bytes());
    match fnv1a(&parts) {
        0 => 1,
        id => id,
    }
}

/// From the initial members' ids and the cluster token.
pub fn cluster_id(member_ids: &[u64], token: &str) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let bytes: Vec<[u8; 8]> = ids.iter().map(|id| id.to_be_bytes()).collect();
    let mut parts: Vec<&[u8]> = bytes.iter().map(|b| b.as_slice()).collect();
    parts.push(token.as_bytes());
    fnv1a(&parts)
}

/// CRC-32 (IEEE), for HashKV.
pub fn crc32(crc: u32, bytes: &[u8]) -> u32 {
    let mut crc = !crc;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
        }
    }
    !crc
}
