use super::*;

const ROLLOUT: u64 = 7;
const TIMEOUT: u64 = 30;

fn drain(rollout: Option<u64>, drained: bool, since: u64) -> Option<TrafficDrain> {
    Some(TrafficDrain {
        drained,
        reason: "test".into(),
        since,
        rollout,
    })
}

fn view(switched: bool, drain: Option<TrafficDrain>, open: usize, health: Health) -> NodeView {
    NodeView {
        switched,
        drain,
        open,
        health,
    }
}

#[test]
fn a_node_is_drained_then_switched_then_restored() {
    use Health::{Failed, Healthy, Pending};
    let ours = || drain(Some(ROLLOUT), true, 100);
    let operators = || drain(None, true, 100);
    let table = [
        // (view, now, expected)
        (view(false, None, 3, Pending), 100, Step::Drain),
        // Another rollout's leftover or an undrained record: drain anew.
        (
            view(false, drain(Some(6), false, 1), 0, Pending),
            100,
            Step::Drain,
        ),
        (
            view(false, drain(None, false, 1), 0, Pending),
            100,
            Step::Drain,
        ),
        // Drained: wait for open connections, bounded from `since`.
        (
            view(false, ours(), 2, Pending),
            101,
            Step::WaitForConnections,
        ),
        (
            view(false, ours(), 2, Pending),
            129,
            Step::WaitForConnections,
        ),
        (
            view(false, ours(), 2, Pending),
            130,
            Step::Switch { timed_out: true },
        ),
        (
            view(false, ours(), 0, Pending),
            101,
            Step::Switch { timed_out: false },
        ),
        // An operator's drain counts, with its own since.
        (
            view(false, operators(), 0, Pending),
            100,
            Step::Switch { timed_out: false },
        ),
        (
            view(false, operators(), 1, Pending),
            131,
            Step::Switch { timed_out: true },
        ),
        // Switched: health gate, then restore ours only.
        (view(true, ours(), 0, Pending), 200, Step::WaitForHealth),
        (view(true, ours(), 0, Healthy), 200, Step::Restore),
        (view(true, None, 0, Healthy), 200, Step::Done),
        (view(true, operators(), 0, Healthy), 200, Step::Done),
        (
            view(true, ours(), 0, Failed("w1: Failed".into())),
            200,
            Step::Failed("w1: Failed".into()),
        ),
    ];
    for (at, (view, now, expected)) in table.iter().enumerate() {
        assert_eq!(
            &next(view, ROLLOUT, *now, TIMEOUT),
            expected,
            "row {at}: {view:?}"
        );
    }
}

#[test]
fn a_zero_timeout_switches_right_after_the_drain_is_written() {
    let drained = view(false, drain(Some(ROLLOUT), true, 100), 5, Health::Pending);
    assert_eq!(
        next(&drained, ROLLOUT, 100, 0),
        Step::Switch { timed_out: true }
    );
}

#[test]
fn the_record_names_the_rollout_and_wave() {
    let written = record(ROLLOUT, 1, 1234);
    assert_eq!(
        written,
        TrafficDrain {
            drained: true,
            reason: "rollout 7, wave 2".into(),
            since: 1234,
            rollout: Some(7),
        }
    );
    let json = serde_json::to_value(&written).unwrap_or_default();
    assert_eq!(
        json,
        serde_json::json!({"drained": true, "reason": "rollout 7, wave 2", "since": 1234, "rollout": 7})
    );
}
