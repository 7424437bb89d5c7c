# The aggregate NixOS module: configures a host as one node of a cluster from
# its projection of the manifest (`ultracloud.manifest`, `ultracloud.node`).
# Daemons with a module of their own are enabled with the projection as
# their `settings` (each leaf a default, so one key can be overridden); the
# config of a daemon without one (none at present: every daemon of the
# manifest has its module) would be written to /etc/ultracloud as is.
{
  config,
  lib,
  ...
}: let
  inherit (lib) mkOption types;
  cfg = config.ultracloud;
  node = cfg.manifest.nodes.${cfg.node} or null;
  daemons =
    if node == null
    then {}
    else node.daemons;
  # Daemon name in the manifest -> its module under services.ultracloud.
  withModule = ["store" "deployer" "scheduler" "nix-agent" "node-agent" "dns" "lb" "iam"];
  # The projection as definitions of `settings`: every leaf (a value that is
  # not an attribute set; lists included) at mkDefault priority, so a user's
  # definition of one key, however deep, replaces just that key.
  defaultLeaves = value:
    if builtins.isAttrs value
    then lib.mapAttrs (_: defaultLeaves) value
    else lib.mkDefault value;
in {
  imports = [
    ./store.nix
    ./deployer.nix
    ./scheduler.nix
    ./nix-agent.nix
    ./node-agent.nix
    ./dns.nix
    ./lb.nix
    ./iam.nix
  ];

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
    package = mkOption {
      type = types.package;
      description = "The UltraCloud package (daemons and `uc`); the flake's module sets it.";
    };
  };

  config = lib.mkIf (cfg.manifest != null) {
    assertions = [
      {
        assertion = node != null;
        message = "ultracloud.node = ${builtins.toJSON cfg.node} is not a node of cluster \"${cfg.manifest.cluster.name}\" (nodes: ${builtins.toJSON (builtins.attrNames cfg.manifest.nodes)}); set it to this host's name in cluster.nodes.";
      }
    ];

    services.ultracloud = lib.genAttrs (builtins.filter (d: daemons ? ${d}) withModule) (d: {
      enable = lib.mkDefault true;
      settings = defaultLeaves daemons.${d};
    });

    # /etc/ultracloud/<daemon>.json: exactly manifest.nodes.<node>.daemons.<daemon>.
    environment.etc = lib.mapAttrs' (daemon: settings:
      lib.nameValuePair "ultracloud/${daemon}.json" {
        text = builtins.toJSON settings;
        mode = "0444";
      }) (removeAttrs daemons withModule);
  };
}
