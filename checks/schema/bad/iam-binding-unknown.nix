# expect: cluster.iam.bindings.ops.role = "editor" is not a role in cluster.iam.roles (known: ["admin","viewer"])
# expect: cluster.iam.bindings.ops.tenant = "globex" is not a tenant in cluster.iam.tenants (known: ["acme"])
# expect: cluster.iam.bindings.ops.subject = "group:dev" names no one; write user:<name>, sa:<service account> or group:<a group of cluster.iam.groups> (known groups: ["ops"])
{
  cluster.iam = {
    tenants.acme = {};
    groups.ops.members = ["user:alice"];
    roles.viewer.permissions = ["vm:*:read"];
    bindings.ops = {
      subject = "group:dev";
      role = "editor";
      tenant = "globex";
    };
  };
}
