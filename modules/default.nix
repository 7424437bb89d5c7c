# The aggregate NixOS module: configures a host as one node of a cluster from
# its projection of the manifest. Per-daemon modules (services.ultracloud.*)
# are imported here as they land.
{
  config,
  lib,
  ...
}: let
  inherit (lib) mkOption types;
  cfg = config.ultracloud;
  node = cfg.manifest.nodes.${cfg.node} or null;
in {
  options.ultracloud = {
    manifest = mkOption {
      type = types.nullOr (types.attrsOf types.anything);
      default = null;
      description = "The rendered cluster manifest (`mkCluster`'s `manifest`).";
    };
    node = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "node01";
      description = "Which node of `ultracloud.manifest` this host is.";
    };
  };

  config = lib.mkIf (cfg.manifest != null) {
    assertions = [
      {
        assertion = node != null;
        message = "ultracloud.node = ${builtins.toJSON cfg.node} is not a node of cluster \"${cfg.manifest.cluster.name}\" (nodes: ${builtins.toJSON (builtins.attrNames cfg.manifest.nodes)}); set it to this host's name in cluster.nodes.";
      }
    ];

    # /etc/ultracloud/<daemon>.json: exactly manifest.nodes.<node>.daemons.<daemon>.
    environment.etc = lib.mapAttrs' (daemon: settings:
      lib.nameValuePair "ultracloud/${daemon}.json" {
        text = builtins.toJSON settings;
        mode = "0444";
      }) (
      if node == null
      then {}
      else node.daemons
    );
  };
}
