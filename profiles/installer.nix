# The installer ISO's profile; mkCluster adds nixpkgs' minimal installation
# CD and the cluster's deployer URLs. At boot uc-install phones home, runs
# disko with the node's layout, installs the node's system from the
# deployer's cache and reboots into it (installer/uc-install.sh). The
# enrollment token comes from the kernel command line (uc.token=…) or
# /run/ultracloud/enrollment-token, never from the ISO.
{
  config,
  lib,
  pkgs,
  ...
}: let
  inherit (lib) mkOption types;
  cfg = config.ultracloud.installer;
in {
  options.ultracloud.installer = {
    cluster = mkOption {
      type = types.str;
      description = "Name of the cluster whose machines this ISO installs.";
    };
    deployers = mkOption {
      type = types.listOf types.str;
      example = ["http://10.0.0.10:7480"];
      description = "Deployer URLs to phone home to, tried in order (uc.deployer= on the kernel command line overrides them).";
    };
  };

  config = {
    environment.etc."ultracloud/installer.json" = {
      text = builtins.toJSON {inherit (cfg) cluster deployers;};
      mode = "0444";
    };

    systemd.services.uc-install = {
      description = "UltraCloud installer: phone home, partition, install, reboot";
      wantedBy = ["multi-user.target"];
      after = ["network-online.target"];
      wants = ["network-online.target"];
      path = [
        pkgs.bash
        pkgs.coreutils
        pkgs.curl
        pkgs.gawk
        pkgs.jq
        pkgs.util-linux
        pkgs.disko
        pkgs.nixos-install-tools
        config.nix.package
        config.systemd.package
      ];
      serviceConfig = {
        Type = "oneshot";
        ExecStart = "${pkgs.bash}/bin/bash ${./installer/uc-install.sh}";
        StandardOutput = "journal+console";
        StandardError = "journal+console";
        # A failed attempt (unreachable deployer, refused token) is retried.
        Restart = "on-failure";
        RestartSec = 30;
      };
    };
  };
}
