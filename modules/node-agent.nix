# services.ultracloud.node-agent: uc-node-agent on every node; runs the
# service instances assigned to the node as transient systemd units, so it
# runs as root (systemd-run, secret files, other users' processes).
{
  config,
  lib,
  pkgs,
  ...
}: let
  cfg = config.services.ultracloud.node-agent;
  listen = import ./listen.nix {inherit lib;};
in {
  options.services.ultracloud.node-agent = import ./daemon-options.nix {inherit lib config pkgs;} {
    daemon = "node-agent";
    description = "uc-node-agent, which runs this node's service instances";
    firewallPurpose = "/health, /metrics, /logs for `uc logs`";
    settingsOptions.heartbeatTtlSeconds = lib.mkOption {
      type = lib.types.ints.positive;
      description = "TTL of the node's heartbeat lease in the store. Defaults to `cluster.nodeAgent.heartbeatTtlSeconds`.";
    };
  };

  config = lib.mkIf cfg.enable {
    environment.etc."ultracloud/node-agent.json" = {
      text = builtins.toJSON cfg.settings;
      mode = "0444";
    };

    systemd.services.uc-node-agent = {
      description = "UltraCloud node-agent";
      wantedBy = ["multi-user.target"];
      after = ["network-online.target"];
      wants = ["network-online.target"];
      # systemd-run/systemctl for the instances; instances inherit this PATH,
      # so the system's packages resolve their commands.
      path = [config.systemd.package "/run/current-system/sw"];
      restartTriggers = [config.environment.etc."ultracloud/node-agent.json".text];
      serviceConfig = {
        ExecStart = "${cfg.package}/bin/uc-node-agent --config /etc/ultracloud/node-agent.json";
        StateDirectory = "ultracloud/node-agent";
        StateDirectoryMode = "0700";
        Restart = "always";
        RestartSec = 2;
        # Instances outlive an agent restart (it adopts them); they are
        # units of their own, but stopping the agent must not touch them.
        KillMode = "process";
      };
    };

    networking.firewall.allowedTCPPorts = lib.optionals cfg.openFirewall (listen.ports cfg.listen);
  };
}
