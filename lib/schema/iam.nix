# cluster.iam: the declared part of the identity model uc-iam serves
# (docs/iam.md): tenants with quotas, groups, roles and bindings. Users and
# their credentials are not declared here (no secret goes through Nix);
# they live in the store, starting with the bootstrap admin.
{
  lib,
  ucTypes,
  ...
}: let
  inherit (lib) mkOption types;
  count = what:
    mkOption {
      type = types.nullOr types.ints.unsigned;
      default = null;
      description = "Most ${what} the tenant may hold; `null`: no limit.";
    };
  tenant = types.submodule {
    options = {
      description = mkOption {
        type = types.str;
        default = "";
        description = "What the tenant is for, shown to operators.";
      };
      quota = {
        vms = count "VMs";
        ports = count "network ports";
        networks = count "networks";
        securityGroups = count "security groups";
        volumes = count "volumes";
        listeners = count "load-balancer listeners";
        records = count "DNS records";
        cpu = count "virtual CPUs over all its VMs";
        memoryMib = count "MiB of memory over all its VMs";
      };
    };
  };
in {
  options.cluster.iam = {
    nodes = mkOption {
      type = types.listOf types.str;
      default = [];
      example = ["cp1"];
      description = "Nodes running uc-iam (control-plane nodes; each signs with a key of its own). Empty: no uc-iam.";
    };
    httpPort = mkOption {
      type = types.port;
      default = 7491;
      description = "Port of uc-iam's API (/v1/login, /v1/keys, …), /health and /metrics.";
    };
    signingKeyFile = mkOption {
      type = ucTypes.secretPath;
      default = "/var/lib/ultracloud/iam/signing.key";
      description = "This node's private token-signing key (generated at first start, mode 0600), in uc-iam's state directory. A path on the node; never a Nix path.";
    };
    auditRetentionSeconds = mkOption {
      type = types.ints.positive;
      default = 604800;
      description = "How long audit records stay in the store (they expire with a store lease).";
    };
    bootstrapAdminSecretFile = mkOption {
      type = ucTypes.secretPath;
      default = "/var/lib/ultracloud/iam/admin.secret";
      description = "File on the uc-iam nodes holding the bootstrap admin's password (first line). If absent at uc-iam's first start, a password is generated, written there (mode 0600) and logged once. A path on the node; never a Nix path.";
    };
    tokenTtlSeconds = mkOption {
      type = types.ints.positive;
      default = 900;
      description = "Lifetime of the tokens uc-iam issues; a retired signing key stays published this long (plus 10 s) after a rotation.";
    };
    tenants = mkOption {
      type = types.attrsOf tenant;
      default = {};
      example = lib.literalExpression ''{ acme.quota = { vms = 10; cpu = 40; memoryMib = 65536; }; }'';
      description = "Tenants (projects): the unit of isolation; each tenant's resources live under `/uc/v1/tenants/<name>/`.";
    };
    groups = mkOption {
      type = types.attrsOf (types.submodule {
        options.members = mkOption {
          type = types.listOf types.str;
          default = [];
          example = ["user:alice" "sa:ci"];
          description = "Members, as `user:<name>` or `sa:<service account>`.";
        };
      });
      default = {};
      description = "Groups of users and service accounts, to bind roles to many at once.";
    };
    roles = mkOption {
      type = types.attrsOf (types.submodule {
        options.permissions = mkOption {
          type = types.listOf types.str;
          example = ["net:port:create" "vm:*:read"];
          description = "Permissions `<service>:<kind>:<action>`, each part lower-case letters, digits and '-', or `*` for any.";
        };
      });
      default = {};
      description = "Roles: named sets of permissions. The role `admin` (`*:*:*`) is created by uc-iam's bootstrap and may be bound without being declared.";
    };
    bindings = mkOption {
      type = types.attrsOf (types.submodule {
        options = {
          subject = mkOption {
            type = types.str;
            example = "group:ops";
            description = "Who gets the role: `user:<name>`, `sa:<service account>` or `group:<group>`.";
          };
          role = mkOption {
            type = types.str;
            description = "A role of `cluster.iam.roles` (or `admin`).";
          };
          tenant = mkOption {
            type = types.nullOr types.str;
            default = null;
            description = "The tenant the binding is scoped to; `null`: the whole cluster (every tenant and the cluster's own resources).";
          };
        };
      });
      default = {};
      description = "Role bindings: a subject gets a role in one tenant or in the cluster.";
    };
  };
}
