# cluster.iam: names are labels, permissions are well formed, and every
# binding points at a declared role, tenant and group.
{
  lib,
  config,
  ucTypes,
  ...
}: let
  cfg = config.cluster.iam;
  part = "([a-z0-9][a-z0-9-]*|[*])";
  isPermission = p: builtins.match "${part}:${part}:${part}" p != null;
  principal = "(user|sa):[a-z0-9][a-z0-9-]*";
  known = attrs: builtins.toJSON (builtins.attrNames attrs);
  roles = cfg.roles // {admin = {};};
  names = kind: attrs:
    map (name: {
      assertion = ucTypes.isDnsLabel name;
      message = "cluster.iam.${kind}.\"${name}\" is not a valid name; use lower-case letters, digits and '-', at most 63 characters, neither starting nor ending with '-'.";
    }) (builtins.attrNames attrs);
  duplicates = path: list:
    map (item: {
      assertion = false;
      message = "${path} lists \"${item}\" twice; list it once.";
    }) (lib.unique (lib.filter (x: lib.count (y: y == x) list > 1) list));
in {
  assertions =
    lib.concatMap (kind: names kind cfg.${kind}) ["tenants" "groups" "roles" "bindings"]
    ++ map (n: {
      assertion = config.cluster.nodes ? ${n};
      message = "cluster.iam.nodes names \"${n}\", which is not in cluster.nodes (known: ${known config.cluster.nodes}).";
    })
    cfg.nodes
    ++ map (option: {
      assertion = ucTypes.isSecretPath cfg.${option};
      message = "cluster.iam.${option} must be an absolute path on the node, as a string, outside the Nix store (a Nix path would copy the secret into the world-readable store); e.g. \"/var/lib/ultracloud/iam/admin.secret\".";
    }) ["bootstrapAdminSecretFile" "signingKeyFile"]
    ++ lib.concatLists (lib.mapAttrsToList (r: role:
      map (p: {
        assertion = isPermission p;
        message = "cluster.iam.roles.${r}.permissions: \"${p}\" is not a permission; write <service>:<kind>:<action>, each part lower-case letters, digits and '-', or '*' (e.g. \"net:port:create\", \"vm:*:read\").";
      })
      role.permissions
      ++ duplicates "cluster.iam.roles.${r}.permissions" role.permissions)
    cfg.roles)
    ++ lib.concatLists (lib.mapAttrsToList (g: group:
      map (m: {
        assertion = builtins.match principal m != null;
        message = "cluster.iam.groups.${g}.members: \"${m}\" is not a member; write user:<name> or sa:<service account>.";
      })
      group.members
      ++ duplicates "cluster.iam.groups.${g}.members" group.members)
    cfg.groups)
    ++ lib.concatLists (lib.mapAttrsToList (b: binding: let
        group = builtins.match "group:(.*)" binding.subject;
      in [
        {
          assertion = roles ? ${binding.role};
          message = "cluster.iam.bindings.${b}.role = \"${binding.role}\" is not a role in cluster.iam.roles (known: ${known roles}); declare it or fix the name.";
        }
        {
          assertion = binding.tenant == null || cfg.tenants ? ${binding.tenant};
          message = "cluster.iam.bindings.${b}.tenant = \"${toString binding.tenant}\" is not a tenant in cluster.iam.tenants (known: ${known cfg.tenants}); declare it, or set null for the whole cluster.";
        }
        {
          assertion = builtins.match principal binding.subject != null || (group != null && cfg.groups ? ${builtins.head group});
          message = "cluster.iam.bindings.${b}.subject = \"${binding.subject}\" names no one; write user:<name>, sa:<service account> or group:<a group of cluster.iam.groups> (known groups: ${known cfg.groups}).";
        }
      ])
      cfg.bindings);
}
