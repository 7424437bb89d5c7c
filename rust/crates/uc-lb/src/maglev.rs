//! Weighted Maglev consistent hashing (Eisenbud et al., NSDI 2016): a
//! lookup table of prime size M in which every backend owns a share of
//! entries proportional to its weight, filled from per-backend permutations
//! so that removing one backend moves few flows of the others. Pure: the
//! same backends (names, weights) give the same table on every LB node.

/// One entry of the table per this many units of total weight, at least
/// (so a backend's share is within 1 % of its weight's share).
pub const ENTRIES_PER_WEIGHT: u64 = 100;

/// The smallest table: Maglev's own 65537. Sizes grow in a ladder
/// (`next_prime(65536 · 2^k)`) rather than with every backend, because a
/// change of size moves nearly every flow: adding or removing a backend
/// keeps the size unless it crosses a rung.
pub const MIN_SIZE: u64 = 65_537;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maglev {
    /// Index into the backends given to [`Maglev::new`], per entry.
    table: Vec<u32>,
}

impl Maglev {
    /// The table for `backends` as (stable name, weight). Weight 0 backends
    /// get no entries; with no weight at all the table is empty.
    pub fn new(backends: &[(&str, u32)]) -> Maglev {
        let total: u64 = backends.iter().map(|(_, w)| u64::from(*w)).sum();
        if total == 0 {
            return Maglev { table: Vec::new() };
        }
        let size = table_size(total);
        let m = usize::try_from(size).unwrap_or(usize::MAX);
        let max_weight = backends.iter().map(|(_, w)| *w).max().unwrap_or(1);
        // offset and skip of each backend's permutation of 0..M.
        let perms: Vec<(u64, u64)> = backends
            .iter()
            .map(|(name, _)| {
                let offset = hash(name.as_bytes(), 0x9e37_79b9) % size;
                let skip = hash(name.as_bytes(), 0x85eb_ca6b) % (size - 1) + 1;
                (offset, skip)
            })
            .collect();
        let mut next = vec![0u64; backends.len()];
        let mut table = vec![u32::MAX; m];
        let mut filled = 0usize;
        // Weighted: in round r a backend takes a turn when its weight says
        // so (weight w out of the largest W: w turns every W rounds).
        let mut round: u64 = 0;
        while filled < m {
            for (i, (_, weight)) in backends.iter().enumerate() {
                let w = u64::from(*weight);
                if w == 0
                    || (round * w) / u64::from(max_weight)
                        == ((round + 1) * w) / u64::from(max_weight)
                {
                    continue;
                }
                let (offset, skip) = perms[i];
                loop {
                    let slot = (offset + next[i] * skip) % size;
                    next[i] += 1;
                    let slot = usize::try_from(slot).unwrap_or(0);
                    if table[slot] == u32::MAX {
                        table[slot] = u32::try_from(i).unwrap_or(u32::MAX);
                        filled += 1;
                        break;
                    }
                }
                if filled == m {
                    break;
                }
            }
            round += 1;
        }
        Maglev { table }
    }

    /// The backend (index) for a flow's hash; `None` with no backends.
    pub fn lookup(&self, flow_hash: u64) -> Option<usize> {
        if self.table.is_empty() {
            return None;
        }
        let len = u64::try_from(self.table.len()).unwrap_or(u64::MAX);
        let slot = usize::try_from(flow_hash % len).unwrap_or(0);
        self.table.get(slot).map(|i| *i as usize)
    }

    pub fn size(&self) -> usize {
        self.table.len()
    }

    /// Entries owned by each backend index (for tests and metrics).
    pub fn shares(&self, backends: usize) -> Vec<usize> {
        let mut shares = vec![0; backends];
        for i in &self.table {
            if let Some(count) = shares.get_mut(*i as usize) {
                *count += 1;
            }
        }
        shares
    }
}

/// FNV-1a with a seed, finished by splitmix64's mixer: stable across
/// builds and machines (std's hashers promise neither).
pub fn hash(bytes: &[u8], seed: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The table size for `total` weight: the first rung of the ladder above
/// `ENTRIES_PER_WEIGHT · total`.
pub fn table_size(total: u64) -> u64 {
    let mut rung = MIN_SIZE - 1;
    while rung <= ENTRIES_PER_WEIGHT * total {
        rung *= 2;
    }
    next_prime(rung)
}

fn next_prime(from: u64) -> u64 {
    let mut n = from.max(2);
    while !is_prime(n) {
        n += 1;
    }
    n
}

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("10.0.{}.{}:8080", i / 250, i % 250))
            .collect()
    }

    fn flows() -> impl Iterator<Item = u64> {
        (0u64..200_000).map(|i| hash(&i.to_le_bytes(), 7))
    }

    #[test]
    fn the_table_is_a_prime_over_a_hundred_entries_per_weight() {
        for (n, size) in [
            (1usize, 65537u64),
            (3, 65537),
            (655, 65537),
            (656, 131101),
            (1000, 131101),
        ] {
            assert_eq!(table_size(n as u64), size, "n={n}");
            assert!(is_prime(size) && size > 100 * n as u64, "n={n}: {size}");
        }
        let names = names(10);
        let backends: Vec<(&str, u32)> = names.iter().map(|s| (s.as_str(), 1)).collect();
        assert_eq!(Maglev::new(&backends).size(), 65537);
    }

    #[test]
    fn equal_weights_share_within_one_percent() {
        for n in [2usize, 3, 7, 10, 33, 100] {
            let names = names(n);
            let backends: Vec<(&str, u32)> = names.iter().map(|s| (s.as_str(), 1)).collect();
            let table = Maglev::new(&backends);
            let ideal = table.size() as f64 / n as f64;
            for (i, share) in table.shares(n).iter().enumerate() {
                let off = (*share as f64 - ideal).abs() / ideal;
                assert!(
                    off <= 0.01,
                    "n={n} backend {i}: {share} entries, ideal {ideal:.1}"
                );
            }
        }
    }

    #[test]
    fn weights_share_in_proportion_within_one_percent() {
        let table_in = [("a", 1u32), ("b", 2), ("c", 3), ("d", 4)];
        let table = Maglev::new(&table_in);
        let size = table.size() as f64;
        for (i, share) in table.shares(4).iter().enumerate() {
            let ideal = size * f64::from(table_in[i].1) / 10.0;
            let off = (*share as f64 - ideal).abs() / ideal;
            assert!(
                off <= 0.01,
                "{}: {share} entries, ideal {ideal:.1}",
                table_in[i].0
            );
        }
        let zero = Maglev::new(&[("a", 0), ("b", 1)]);
        assert_eq!(zero.shares(2)[0], 0);
        assert_eq!(Maglev::new(&[]).lookup(1), None);
        assert_eq!(Maglev::new(&[("a", 0)]).lookup(1), None);
    }

    /// Counted on the table's entries (every flow hashes to one, uniformly):
    /// the entries the removed backend owned (1/N, within 1 %) must move,
    /// and Maglev moves a few others too (its known trade for balance):
    /// measured 0.02 % of flows at N=3 to 0.6 % at N=50. So the bound is
    /// 1/N plus at most 1 % of all flows, not 1/N exactly.
    #[test]
    fn removing_one_of_n_moves_at_most_one_nth_of_flows() {
        for n in [2usize, 3, 5, 10, 20, 50] {
            let names = names(n);
            let all: Vec<(&str, u32)> = names.iter().map(|s| (s.as_str(), 1)).collect();
            for removed in [0, n / 2, n - 1] {
                let rest: Vec<(&str, u32)> = all
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != removed)
                    .map(|(_, b)| *b)
                    .collect();
                let before = Maglev::new(&all);
                let after = Maglev::new(&rest);
                assert_eq!(before.size(), after.size());
                let size = before.size() as u64;
                let mut moved = 0u64;
                for slot in 0..size {
                    let a = all[before.lookup(slot).unwrap()].0;
                    let b = rest[after.lookup(slot).unwrap()].0;
                    moved += u64::from(a != b);
                }
                let fraction = moved as f64 / size as f64;
                let owned = before.shares(n)[removed] as f64 / size as f64;
                assert!(owned <= 1.0 / n as f64 * 1.01, "n={n}: owned {owned}");
                assert!(
                    fraction <= 1.0 / n as f64 + 0.01,
                    "n={n}, removing {removed}: {fraction:.4} of flows moved, more than 1/{n}"
                );
                // And a sample of real flow hashes agrees.
                let sampled = flows()
                    .filter(|f| {
                        all[before.lookup(*f).unwrap()].0 != rest[after.lookup(*f).unwrap()].0
                    })
                    .count() as f64
                    / 200_000.0;
                assert!(
                    (sampled - fraction).abs() < 0.01,
                    "n={n}: {sampled} vs {fraction}"
                );
            }
        }
    }

    #[test]
    fn the_same_backends_give_the_same_table() {
        let a = Maglev::new(&[("x", 1), ("y", 1)]);
        let b = Maglev::new(&[("x", 1), ("y", 1)]);
        assert_eq!(a, b);
        assert_eq!(hash(b"abc", 1), hash(b"abc", 1));
        assert_ne!(hash(b"abc", 1), hash(b"abc", 2));
    }
}
