//! Choosing a backend: pure functions of what the pool knows (who is in
//! rotation, their open connections, a rotating counter, a flow hash).
//! The pool (`pool.rs`) holds the state; this decides.

use crate::maglev::Maglev;

/// How a listener picks a backend (the schema's `balance`), each in
/// proportion to the backends' weights.
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
/// rotation). Backends of weight 0 are never in rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    pub active: u64,
    pub weight: u32,
}

/// Smooth weighted round-robin (nginx's): the order of one full turn, in
/// which each backend (index) appears `weight` times, spread out rather
/// than in runs. Equal weights give 0, 1, 2, …
pub fn schedule(weights: &[u32]) -> Vec<usize> {
    let total: i64 = weights.iter().map(|w| i64::from(*w)).sum();
    let mut current = vec![0i64; weights.len()];
    let mut order = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        let mut best = 0;
        for (i, w) in weights.iter().enumerate() {
            current[i] += i64::from(*w);
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        order.push(best);
    }
    order
}

/// What the pool keeps per group of backends to choose among them.
#[derive(Debug, Default)]
pub struct Tables<'a> {
    /// Round-robin's turn (`schedule` of the rotation's weights).
    pub schedule: &'a [usize],
    pub maglev: Option<&'a Maglev>,
}

/// The index (into the rotation) of the backend for the next connection.
/// `n` backends are in rotation, `load(i)` tells of one (asked only by
/// least-connections, so the others allocate nothing per choice).
/// `counter` increases by one per call (round-robin's position, and the
/// tie-break of least-connections so equal backends take turns); `flow` is
/// the client's hash for Maglev, whose table was built on the same
/// rotation. `skip` lists indices already tried for this request.
pub fn choose(
    policy: Policy,
    n: usize,
    load: impl Fn(usize) -> Load,
    counter: u64,
    flow: u64,
    tables: &Tables<'_>,
    skip: &[usize],
) -> Option<usize> {
    if n == 0 || skip.len() >= n {
        return None;
    }
    let start = usize::try_from(counter % n as u64).unwrap_or(0);
    let rotated = (0..n)
        .map(|k| (start + k) % n)
        .filter(|i| !skip.contains(i));
    match policy {
        Policy::RoundRobin => {
            let turn = tables.schedule;
            if turn.is_empty() {
                return rotated.into_iter().next();
            }
            let at = usize::try_from(counter % turn.len() as u64).unwrap_or(0);
            (0..turn.len())
                .map(|k| turn[(at + k) % turn.len()])
                .find(|i| *i < n && !skip.contains(i))
        }
        // Fewest open connections per unit of weight: a/wa < b/wb as
        // a·wb < b·wa, without division.
        Policy::LeastConnections => rotated.min_by(|a, b| {
            let (la, lb) = (load(*a), load(*b));
            (u128::from(la.active) * u128::from(lb.weight))
                .cmp(&(u128::from(lb.active) * u128::from(la.weight)))
        }),
        Policy::Maglev => match tables.maglev.and_then(|t| t.lookup(flow)) {
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
        active
            .iter()
            .map(|a| Load {
                active: *a,
                weight: 1,
            })
            .collect()
    }

    fn even(n: usize) -> Vec<usize> {
        schedule(&vec![1; n])
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
            let turn = even(active.len());
            let tables = Tables {
                schedule: &turn,
                maglev: None,
            };
            assert_eq!(
                choose(
                    *policy,
                    active.len(),
                    |i| loads(active)[i],
                    *counter,
                    0,
                    &tables,
                    skip
                ),
                *expected,
                "{policy:?} {active:?} counter {counter} skip {skip:?}"
            );
        }
    }

    #[test]
    fn maglev_follows_the_flow_and_falls_back_when_retried() {
        let table = Maglev::new(&[("a", 1), ("b", 1), ("c", 1)]);
        let l = loads(&[0, 0, 0]);
        let tables = Tables {
            schedule: &[],
            maglev: Some(&table),
        };
        for flow in [1u64, 99, 12345, u64::MAX] {
            let first = choose(Policy::Maglev, l.len(), |i| l[i], 0, flow, &tables, &[]).unwrap();
            assert_eq!(first, table.lookup(flow).unwrap());
            for counter in 0..5 {
                assert_eq!(
                    choose(
                        Policy::Maglev,
                        l.len(),
                        |i| l[i],
                        counter,
                        flow,
                        &tables,
                        &[]
                    ),
                    Some(first)
                );
            }
            let retry = choose(
                Policy::Maglev,
                l.len(),
                |i| l[i],
                0,
                flow,
                &tables,
                &[first],
            )
            .unwrap();
            assert_ne!(retry, first);
        }
    }

    /// How many of 400 round-robin choices each backend of `turn` gets.
    fn round_robin_counts(turn: &[usize], n: usize) -> Vec<u32> {
        let tables = Tables {
            schedule: turn,
            maglev: None,
        };
        let l = loads(&vec![0; n]);
        let mut seen = vec![0u32; n];
        for counter in 0..400 {
            let chosen = choose(Policy::RoundRobin, n, |i| l[i], counter, 0, &tables, &[]);
            seen[chosen.unwrap()] += 1;
        }
        seen
    }

    #[test]
    fn round_robin_spreads_evenly() {
        assert_eq!(round_robin_counts(&even(4), 4), [100; 4]);
    }

    #[test]
    fn weights_skew_round_robin_and_least_connections() {
        assert_eq!(schedule(&[1, 1, 1]), [0, 1, 2]);
        // Spread out, not a run of three: a a b a (nginx's order).
        assert_eq!(schedule(&[3, 1]), [0, 0, 1, 0]);
        assert_eq!(schedule(&[5, 1, 1]), [0, 0, 1, 0, 2, 0, 0]);
        let turn = schedule(&[3, 1]);
        assert_eq!(round_robin_counts(&turn, 2), [300, 100]);
        let tables = Tables {
            schedule: &turn,
            maglev: None,
        };
        let l = loads(&[0, 0]);
        // Skipping the heavy one still finds the other.
        assert_eq!(
            choose(Policy::RoundRobin, l.len(), |i| l[i], 0, 0, &tables, &[0]),
            Some(1)
        );
        // Least connections per weight: 4 open on weight 4 beats 2 on weight 1.
        let weighted = [
            Load {
                active: 4,
                weight: 4,
            },
            Load {
                active: 2,
                weight: 1,
            },
        ];
        let none = Tables::default();
        assert_eq!(
            choose(
                Policy::LeastConnections,
                2,
                |i| weighted[i],
                0,
                0,
                &none,
                &[]
            ),
            Some(0)
        );
    }
}
