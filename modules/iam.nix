# services.ultracloud.iam: uc-iam on the nodes of cluster.iam.nodes
# (docs/iam.md). A dynamic user; its state directory holds this node's
# private signing key and, by default, the bootstrap admin's password file,
# both written 0600 by uc-iam itself: neither goes through the Nix store.
{
  config,
  lib,
  pkgs,
  ...
}: let
  cfg = config.services.ultracloud.iam;
  listen = import ./listen.nix {inherit lib;};
in {
  options.services.ultracloud.iam = import ./daemon-options.nix {inherit lib config pkgs;} {
    daemon = "iam";
    description = "uc-iam, the identity service (login, tokens, key rotation, revocation, audit)";
    firewallPurpose = "the login and key API, /health, /metrics";
    settingsOptions = {
      tokenTtlSeconds = lib.mkOption {
        type = lib.types.ints.positive;
        description = "Lifetime of the tokens issued. Defaults to `cluster.iam.tokenTtlSeconds`.";
      };
      auditRetentionSeconds = lib.mkOption {
        type = lib.types.ints.positive;
        description = "How long audit records stay in the store. Defaults to `cluster.iam.auditRetentionSeconds`.";
      };
    };
  };

  config = lib.mkIf cfg.enable {
    environment.etc."ultracloud/iam.json" = {
      text = builtins.toJSON cfg.settings;
      mode = "0444";
    };

    systemd.services.uc-iam = {
      description = "UltraCloud identity service";
      wantedBy = ["multi-user.target"];
      after = ["network-online.target"];
      wants = ["network-online.target"];
      restartTriggers = [config.environment.etc."ultracloud/iam.json".text];
      serviceConfig =
        import ./hardening.nix
        // {
          ExecStart = "${cfg.package}/bin/uc-iam --config /etc/ultracloud/iam.json";
          DynamicUser = true;
          # /var/lib/ultracloud/iam: the signing key and the admin secret.
          StateDirectory = "ultracloud/iam";
          StateDirectoryMode = "0700";
          Restart = "on-failure";
          RestartSec = 5;
        };
    };

    networking.firewall.allowedTCPPorts = lib.optionals cfg.openFirewall (listen.ports cfg.listen);
  };
}
