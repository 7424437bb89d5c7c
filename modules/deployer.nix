# services.ultracloud.deployer: uc-deployer (desired state, rollouts, binary
# cache, phone-home, dashboard) on control-plane nodes.
{
  config,
  lib,
  pkgs,
  ...
}: let
  cfg = config.services.ultracloud.deployer;
  listen = import ./listen.nix {inherit lib;};
in {
  options.services.ultracloud.deployer = import ./daemon-options.nix {inherit lib config pkgs;} {
    daemon = "deployer";
    description = "uc-deployer, UltraCloud's deployer";
    firewallPurpose = "API, cache, dashboard, phone-home";
  };

  config = lib.mkIf cfg.enable {
    environment.etc."ultracloud/deployer.json" = {
      text = builtins.toJSON cfg.settings;
      mode = "0444";
    };

    users.users.ultracloud-deployer = {
      isSystemUser = true;
      group = "ultracloud-deployer";
      description = "UltraCloud deployer";
    };
    users.groups.ultracloud-deployer = {};

    systemd.services.uc-deployer = {
      description = "UltraCloud deployer";
      wantedBy = ["multi-user.target"];
      after = ["network-online.target"];
      wants = ["network-online.target"];
      # nix path-info and nix-store --dump serve the cache from the local store.
      path = [config.nix.package];
      restartTriggers = [config.environment.etc."ultracloud/deployer.json".text];
      # A network daemon that only needs its state dir (./hardening.nix).
      serviceConfig =
        import ./hardening.nix
        // {
          ExecStart = "${cfg.package}/bin/uc-deployer --config /etc/ultracloud/deployer.json";
          User = "ultracloud-deployer";
          Group = "ultracloud-deployer";
          StateDirectory = "ultracloud/deployer";
          StateDirectoryMode = "0700";
          Restart = "on-failure";
          RestartSec = 5;
        };
    };

    networking.firewall.allowedTCPPorts = lib.optionals cfg.openFirewall (listen.ports cfg.listen);
  };
}
