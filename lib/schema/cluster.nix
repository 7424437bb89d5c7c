# Cluster identity, and the assertion/warning plumbing the validation modules
# feed (same shape as NixOS' `assertions` and `warnings`).
{lib, ...}: let
  inherit (lib) mkOption types;
in {
  options = {
    cluster.name = mkOption {
      type = types.str;
      example = "prod-eu1";
      description = ''
        Name of the cluster: a DNS label. Used in the store's cluster token
        and in the manifest.
      '';
    };

    assertions = mkOption {
      type = types.listOf (types.submodule {
        options = {
          assertion = mkOption {
            type = types.bool;
            description = "Must hold for the cluster to be rendered.";
          };
          message = mkOption {
            type = types.str;
            description = "What is wrong, naming the option path and the fix.";
          };
        };
      });
      default = [];
      internal = true;
      description = "Validation rules; `mkCluster` refuses to render when one fails.";
    };

    warnings = mkOption {
      type = types.listOf types.str;
      default = [];
      internal = true;
      description = "Printed by `mkCluster` while rendering.";
    };

    manifest = mkOption {
      type = types.attrsOf types.anything;
      readOnly = true;
      internal = true;
      description = "The rendered cluster: the JSON document every daemon config is a projection of.";
    };
  };
}
