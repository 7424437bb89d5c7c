//! Choosing a backend: pure functions of what the pool knows (who is in
//! rotation, their open connections, a rotating counter, a flow hash).
//! The pool (`pool.rs`) holds the state; this decides.

use crate::maglev::Maglev;

/// How a listener picks a backend. `RoundRobin` and `LeastConnections`
/// are what the schema offers (`balance`); `Maglev` (weighted consistent
/// hashing on the client address) is here for when it offers more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    RoundRobin,
    LeastConnections,
    Maglev,
}

impl From<uc_types::Balance> for Policy {
    fn from(balance: uc_types::Balance) -> Policy {
        match balance {
            uc_types::Balance::RoundRobin => Policy::RoundRobin,
            uc_types::Balance::LeastConnections => Policy::LeastConnections,
            uc_types::Balance::Maglev => Policy::Maglev,
        }
    }
}

/// What a choice looks at, per backend in rotation (same order as the
/// rotation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    pub active: u64,
}

/// The index (into the rotation) of the backend for the next connection.
/// `counter` increases by one per call (round-robin's position, and the
/// tie-break of least-connections so equal backends take turns); `flow` is
/// the client's hash for Maglev, whose `table` was built on the same
/// rotation. `skip` lists indices already tried for this request.
pub fn choose(
    policy: Policy,
    loads: &[Load],
    counter: u64,
    flow: u64,
    table: Option<&Maglev>,
    skip: &[usize],
) -> Option<usize> {
    let n = loads.len();
    if n == 0 || skip.len() >= n {
        return None;
    }
    let start = usize::try_from(counter % n as u64).unwrap_or(0);
    let rotated = (0..n)
        .map(|k| (start + k) % n)
        .filter(|i| !skip.contains(i));
    match policy {
        Policy::RoundRobin => rotated.into_iter().next(),
        Policy::LeastConnections => rotated.min_by_key(|i| loads[*i].active),
        Policy::Maglev => match table.and_then(|t| t.lookup(flow)) {
            Some(i) if i < n && !skip.contains(&i) => Some(i),
            // Retried, or no table: fall back to the next in turn.
            _ => rotated.into_iter().next(),
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn loads(active: &[u64]) -> Vec<Load> {
        active.iter().map(|a| Load { active: *a }).collect()
    }

    #[test]
    fn choices() {
        use Policy::*;
        // (policy, active connections, counter, skip, expected)
        type Row = (Policy, &'static [u64], u64, &'static [usize], Option<usize>);
        let table: &[Row] = &[
            (RoundRobin, &[], 0, &[], None),
            (RoundRobin, &[0, 0, 0], 0, &[], Some(0)),
            (RoundRobin, &[0, 0, 0], 1, &[], Some(1)),
            (RoundRobin, &[0, 0, 0], 5, &[], Some(2)),
            (RoundRobin, &[9, 0, 0], 0, &[], Some(0)),
            (RoundRobin, &[0, 0, 0], 0, &[0], Some(1)),
            (RoundRobin, &[0, 0], 0, &[0, 1], None),
            (LeastConnections, &[3, 1, 2], 0, &[], Some(1)),
            (LeastConnections, &[3, 1, 2], 7, &[1], Some(2)),
            // Ties take turns with the counter.
            (LeastConnections, &[1, 1, 5], 0, &[], Some(0)),
            (LeastConnections, &[1, 1, 5], 1, &[], Some(1)),
            (LeastConnections, &[1, 1, 5], 2, &[], Some(0)),
            (Maglev, &[0, 0], 3, &[], Some(1)),
        ];
        for (policy, active, counter, skip, expected) in table {
            assert_eq!(
                choose(*policy, &loads(active), *counter, 0, None, skip),
                *expected,
                "{policy:?} {active:?} counter {counter} skip {skip:?}"
            );
        }
    }

    #[test]
    fn maglev_follows_the_flow_and_falls_back_when_retried() {
        let table = Maglev::new(&[("a", 1), ("b", 1), ("c", 1)]);
        let l = loads(&[0, 0, 0]);
        for flow in [1u64, 99, 12345, u64::MAX] {
            let first = choose(Policy::Maglev, &l, 0, flow, Some(&table), &[]).unwrap();
            assert_eq!(first, table.lookup(flow).unwrap());
            for counter in 0..5 {
                assert_eq!(
                    choose(Policy::Maglev, &l, counter, flow, Some(&table), &[]),
                    Some(first)
                );
            }
            let retry = choose(Policy::Maglev, &l, 0, flow, Some(&table), &[first]).unwrap();
            assert_ne!(retry, first);
        }
    }

    #[test]
    fn round_robin_spreads_evenly() {
        let l = loads(&[0, 0, 0, 0]);
        let mut seen = [0u32; 4];
        for counter in 0..400 {
            seen[choose(Policy::RoundRobin, &l, counter, 0, None, &[]).unwrap()] += 1;
        }
        assert_eq!(seen, [100; 4]);
    }
}
