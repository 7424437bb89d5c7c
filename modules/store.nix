# services.ultracloud.store: uc-store, the Raft-replicated store speaking
# etcd's v3 API, on the cluster's store members.
{
  config,
  lib,
  ...
}: let
  cfg = config.services.ultracloud.store;
  portOf = url: lib.toInt (lib.last (lib.splitString ":" (lib.removeSuffix "/" url)));
  urls = cfg.settings.listenClientUrls ++ cfg.settings.listenPeerUrls ++ cfg.settings.listenMetricsUrls;
in {
  options.services.ultracloud.store = import ./daemon-options.nix {inherit lib config;} {
    daemon = "store";
    description = "uc-store, UltraCloud's store";
    firewallPurpose = "clients, peers and metrics";
    portsFrom = "`settings.listenClientUrls`, `settings.listenPeerUrls` and `settings.listenMetricsUrls`";
  };

  config = lib.mkIf cfg.enable {
    environment.etc."ultracloud/store.json" = {
      text = builtins.toJSON cfg.settings;
      mode = "0444";
    };

    users.users.ultracloud-store = {
      isSystemUser = true;
      group = "ultracloud-store";
      description = "UltraCloud store";
    };
    users.groups.ultracloud-store = {};

    systemd.services.uc-store = {
      description = "UltraCloud store (etcd v3 API)";
      wantedBy = ["multi-user.target"];
      after = ["network-online.target"];
      wants = ["network-online.target"];
      restartTriggers = [config.environment.etc."ultracloud/store.json".text];
      # A network daemon that only needs its state dir (./hardening.nix).
      serviceConfig =
        import ./hardening.nix
        // {
          ExecStart = "${cfg.package}/bin/uc-store --config /etc/ultracloud/store.json";
          User = "ultracloud-store";
          Group = "ultracloud-store";
          # settings.dataDir is /var/lib/ultracloud/store.
          StateDirectory = "ultracloud/store";
          StateDirectoryMode = "0700";
          Restart = "on-failure";
          RestartSec = 5;
        };
    };

    networking.firewall.allowedTCPPorts = lib.optionals cfg.openFirewall (lib.unique (map portOf urls));
  };
}
