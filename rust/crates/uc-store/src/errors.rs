//! gRPC errors with exactly the codes and texts of etcd's rpctypes: clients
//! match on the text.

use tonic::{Code, Status};

use crate::mvcc::{MvccError, RequestError};
use crate::state::ApplyError;

pub fn apply(err: &ApplyError) -> Status {
    match err {
        ApplyError::Request(err) => request(err),
        ApplyError::LeaseNotFound => Status::not_found(err.to_string()),
        ApplyError::LeaseExists => Status::failed_precondition(err.to_string()),
        ApplyError::LeaseTtlTooLarge => Status::out_of_range(err.to_string()),
        ApplyError::NoSpace => no_space(),
    }
}

pub fn request(err: &RequestError) -> Status {
    match err {
        RequestError::Mvcc(err) => mvcc(err),
        other => Status::invalid_argument(other.to_string()),
    }
}

pub fn mvcc(err: &MvccError) -> Status {
    Status::out_of_range(err.to_string())
}

pub fn no_space() -> Status {
    Status::resource_exhausted("etcdserver: mvcc: database space exceeded")
}

pub fn timeout() -> Status {
    Status::unavailable("etcdserver: request timed out")
}

pub fn no_leader() -> Status {
    Status::unavailable("etcdserver: no leader")
}

pub fn not_leader() -> Status {
    Status::failed_precondition("etcdserver: not leader")
}

pub fn bad_leader_transferee() -> Status {
    Status::failed_precondition("etcdserver: bad leader transferee")
}

pub fn leader_transfer_timeout() -> Status {
    Status::unavailable("etcdserver: request timed out, leader transfer took too long")
}

pub fn leader_changed() -> Status {
    Status::unavailable("etcdserver: leader changed")
}

pub fn stopped(detail: String) -> Status {
    tracing::error!(%detail, "raft stopped");
    Status::unavailable("etcdserver: server stopped")
}

pub fn internal(detail: String) -> Status {
    tracing::error!(%detail, "internal error");
    Status::new(Code::Internal, detail)
}

pub fn empty_key() -> Status {
    Status::invalid_argument("etcdserver: key is not provided")
}

pub fn request_too_large() -> Status {
    Status::invalid_argument("etcdserver: request is too large")
}

pub fn auth_not_enabled() -> Status {
    Status::failed_precondition("etcdserver: authentication is not enabled")
}

pub fn member_not_found() -> Status {
    Status::not_found("etcdserver: member not found")
}

pub fn member_exists() -> Status {
    Status::failed_precondition("etcdserver: member ID already exist")
}

pub fn peer_url_exists() -> Status {
    Status::failed_precondition("etcdserver: Peer URLs already exists")
}

pub fn bad_urls() -> Status {
    Status::invalid_argument("etcdserver: given member URLs are invalid")
}

pub fn not_learner() -> Status {
    Status::failed_precondition("etcdserver: can only promote a learner member")
}
