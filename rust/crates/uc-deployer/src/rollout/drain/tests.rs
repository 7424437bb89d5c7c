use super::*;

const ROLLOUT: u64 = 7;
const TIMEOUT: u64 = 30;

fn drain(rollout: Option<u64>, drained: bool, since: u64) -> Option<TrafficDrain> {
    Some(TrafficDrain {
        drained,
        reason: "test".into(),
        since,
        rollout,
        serving: Vec::new(),
    })
}

fn view(switched: bool, drain: Option<TrafficDrain>, open: usize, health: Health) -> NodeView {
    NodeView {
        switched,
        drain,
        open,
        returning: 0,
        health,
    }
}

fn restored(drain: Option<TrafficDrain>, returning: usize) -> NodeView {
    NodeView {
        returning,
        ..view(true, drain, 0, Health::Healthy)
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
        // Restored at 200: its backends come back, bounded from then.
        (
            restored(drain(Some(ROLLOUT), false, 200), 1),
            229,
            Step::WaitForReturn,
        ),
        (
            restored(drain(Some(ROLLOUT), false, 200), 1),
            230,
            Step::Forget,
        ),
        (
            restored(drain(Some(ROLLOUT), false, 200), 0),
            201,
            Step::Forget,
        ),
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
    let at = LbBackendRef {
        lb: "edge1".into(),
        listener: "www".into(),
        address: "10.0.0.1:80".parse().unwrap_or_else(|_| unreachable!()),
    };
    let written = record(ROLLOUT, 1, 1234, vec![at.clone()]);
    assert_eq!(
        written,
        TrafficDrain {
            drained: true,
            reason: "rollout 7, wave 2".into(),
            since: 1234,
            rollout: Some(7),
            serving: vec![at],
        }
    );
    let json = serde_json::to_value(&written).unwrap_or_default();
    assert_eq!(
        json,
        serde_json::json!({"drained": true, "reason": "rollout 7, wave 2", "since": 1234, "rollout": 7,
            "serving": [{"lb": "edge1", "listener": "www", "address": "10.0.0.1:80"}]})
    );
}

fn listed(address: &str, state: LbBackendState, connections: Option<u64>) -> Listed {
    Listed {
        at: LbBackendRef {
            lb: "edge1".into(),
            listener: "www".into(),
            address: address.parse().unwrap_or_else(|_| unreachable!()),
        },
        state,
        connections,
    }
}

#[test]
fn open_backends_are_in_rotation_or_draining_with_connections() {
    use LbBackendState::{Down, Draining, Unknown, Up};
    let all = [
        listed("10.0.0.1:80", Up, None),
        listed("10.0.0.1:81", Down, None),
        listed("10.0.0.1:82", Unknown, None),
        listed("10.0.0.1:83", Draining, Some(2)),
        listed("10.0.0.1:84", Draining, Some(0)),
        // From a uc-lb that does not report connections: assume some.
        listed("10.0.0.1:85", Draining, None),
    ];
    assert_eq!(open(&all), 5);
    assert_eq!(open(&all[4..5]), 0);
    assert_eq!(serving(&all), [all[0].at.clone()]);
}

#[test]
fn a_backend_returns_when_its_lb_lists_it_up_again_or_is_gone() {
    let status = |backends: serde_json::Value| -> LbListenerStatus {
        serde_json::from_value(serde_json::json!({"node": "edge1", "listener": "www",
            "serving": true, "backends": backends}))
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let at = listed("10.0.0.1:80", LbBackendState::Up, None).at;
    let serving = [at];
    let back = status(serde_json::json!([{"address": "10.0.0.1:80", "state": "up"}]));
    let probing = status(serde_json::json!([{"address": "10.0.0.1:80", "state": "unknown"}]));
    let absent = status(serde_json::json!([{"address": "10.0.0.2:80", "state": "up"}]));
    assert_eq!(returning(&[back], &serving), 0);
    assert_eq!(returning(&[probing], &serving), 1);
    assert_eq!(returning(&[absent], &serving), 1);
    assert_eq!(returning(&[], &serving), 0, "its uc-lb is gone");
}
