//! etcd's Auth service: authentication is not enabled, as on an etcd
//! cluster where nobody ran `etcdctl auth enable`.

use tonic::{Request, Response, Status};
use uc_proto::etcdserverpb as pb;
use uc_proto::etcdserverpb::auth_server::Auth;

use crate::errors::auth_not_enabled;

pub struct AuthService;

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_enable(
        &self,
        _request: Request<pb::AuthEnableRequest>,
    ) -> Result<Response<pb::AuthEnableResponse>, Status> {
        Err(auth_not_enabled())
    }

    async fn auth_disable(
        &self,
        _request: Request<pb::AuthDisableRequest>,
    ) -> Result<Response<pb::AuthDisableResponse>, Status> {
        Err(auth_not_enabled())
    }

    async fn authenticate(
        &self,
        _request: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        Err(auth_not_enabled())
    }

    async fn user_add(
        &self,
        _request: Request<pb::AuthUserAddRequest>,
    ) -> Result<Response<pb::AuthUserAddResponse>, Status> {
        Err(auth_not_enabled())
    }

    async fn user_get(
        &self,
        _request: Request<pb::AuthUserGetRequest>,
    ) -> Result<Response<pb::AuthUserGetResponse>, Status> {
        Err(auth_not_enabled())
    }

    async fn user_list(
        &self,
        _request: Request<pb::AuthUserListRequest>,
    ) -> Result<Response<pb::AuthUserListResponse>, Status> {
        Err(auth_not_enabled())
    }

    async fn user_delete(
        &self,
        _request: Request<pb::AuthUserDeleteRequest>,
    ) -> Result<Response<pb::AuthUserDeleteResponse>, Status> {
        Err(auth_not_enabled())
    }

    async fn user_change_password(
        &self,
        _request: Request<pb::AuthUserChangePasswordRequest>,
    ) -> Result<Response<pb::AuthUserChangePasswordResponse>, Status> {
        Err(auth_not_enabled())
    }

    async fn user_grant_role(
        &self,
        _request: Request<pb::AuthUserGrantRoleRequest>,
    ) -> Result<Response<pb::AuthUserGrantRoleResponse>, Status> {
        Err(auth_not_enabled())
    }

    async fn user_revoke_role(
        &self,
        _request: Request<pb::AuthUserRevokeRoleRequest>,
    ) -> Result<Response<pb::AuthUserRevokeRoleResponse>, Status> {
        Err(auth_not_enabled())
    }

    async fn role_add(
        &self,
        _request: Request<pb::AuthRoleAddRequest>,
    ) -> Result<Response<pb::AuthRoleAddResponse>, Status> {
        Err(auth_not_enabled())
    }

    async fn role_get(
        &self,
        _request: Request<pb::AuthRoleGetRequest>,
    ) -> Result<Response<pb::AuthRoleGetResponse>, Status> {
        Err(auth_not_enabled())
    }

    async fn role_list(
        &self,
        _request: Request<pb::AuthRoleListRequest>,
    ) -> Result<Response<pb::AuthRoleListResponse>, Status> {
        Err(auth_not_enabled())
    }

    async fn role_delete(
        &self,
        _request: Request<pb::AuthRoleDeleteRequest>,
    ) -> Result<Response<pb::AuthRoleDeleteResponse>, Status> {
        Err(auth_not_enabled())
    }

    async fn role_grant_permission(
        &self,
        _request: Request<pb::AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<pb::AuthRoleGrantPermissionResponse>, Status> {
        Err(auth_not_enabled())
    }

    async fn role_revoke_permission(
        &self,
        _request: Request<pb::AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<pb::AuthRoleRevokePermissionResponse>, Status> {
        Err(auth_not_enabled())
    }
}
