# services.ultracloud.nix-agent: uc-nix-agent on every node; switches the node
# to its desired system, so it runs as root.
{
  config,
  lib,
  pkgs,
  ...
}: let
  cfg = config.services.ultracloud.nix-agent;
  listen = import ./listen.nix {inherit lib;};
in {
  options.services.ultracloud.nix-agent = import ./daemon-options.nix {inherit lib config pkgs;} {
    daemon = "nix-agent";
    description = "uc-nix-agent, which keeps this node on its desired NixOS system";
    firewallPurpose = "/health, /metrics";
  };

  config = lib.mkIf cfg.enable {
    environment.etc."ultracloud/nix-agent.json" = {
      text = builtins.toJSON cfg.settings;
      mode = "0444";
    };

    systemd.services.uc-nix-agent = {
      description = "UltraCloud nix-agent";
      wantedBy = ["multi-user.target"];
      after = ["network-online.target"];
      wants = ["network-online.target"];
      # flock guards activations (see docs/nix-agent.md).
      path = [config.nix.package pkgs.util-linux];
      # The agent runs switch-to-configuration itself: restarting it from
      # inside that activation would kill the activation. It picks up its new
      # version at the next boot or explicit restart, like system.autoUpgrade.
      restartIfChanged = false;
      stopIfChanged = false;
      serviceConfig = {
        ExecStart = "${cfg.package}/bin/uc-nix-agent --config /etc/ultracloud/nix-agent.json run";
        StateDirectory = "ultracloud/nix-agent";
        StateDirectoryMode = "0700";
        Restart = "always";
        RestartSec = 5;
        # Stopping the agent must not kill an activation it started.
        KillMode = "process";
      };
    };

    networking.firewall.allowedTCPPorts = lib.optionals cfg.openFirewall (listen.ports cfg.listen);
  };
}
