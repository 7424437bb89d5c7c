# services.ultracloud.scheduler: uc-scheduler on control-plane nodes. Every
# node that runs one campaigns; one leads, the others stand by. Stateless:
# everything it knows is in the store.
{
  config,
  lib,
  pkgs,
  ...
}: let
  cfg = config.services.ultracloud.scheduler;
  listen = import ./listen.nix {inherit lib;};
in {
  options.services.ultracloud.scheduler = import ./daemon-options.nix {inherit lib config pkgs;} {
    daemon = "scheduler";
    description = "uc-scheduler, which places service instances on nodes";
    firewallPurpose = "/health, /metrics";
    settingsOptions.nodeLossGraceSeconds = lib.mkOption {
      type = lib.types.ints.positive;
      description = "How long a node's heartbeat may be missing before its instances are placed elsewhere. Defaults to `cluster.scheduler.nodeLossGraceSeconds`.";
    };
  };

  config = lib.mkIf cfg.enable {
    environment.etc."ultracloud/scheduler.json" = {
      text = builtins.toJSON cfg.settings;
      mode = "0444";
    };

    systemd.services.uc-scheduler = {
      description = "UltraCloud scheduler";
      wantedBy = ["multi-user.target"];
      after = ["network-online.target"];
      wants = ["network-online.target"];
      restartTriggers = [config.environment.etc."ultracloud/scheduler.json".text];
      serviceConfig =
        import ./hardening.nix
        // {
          ExecStart = "${cfg.package}/bin/uc-scheduler --config /etc/ultracloud/scheduler.json run";
          DynamicUser = true;
          Restart = "on-failure";
          RestartSec = 5;
        };
    };

    networking.firewall.allowedTCPPorts = lib.optionals cfg.openFirewall (listen.ports cfg.listen);
  };
}
