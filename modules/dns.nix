# services.ultracloud.dns: uc-dns on the nodes of `cluster.dns.servers`;
# answers the cluster's zones from the store (docs/dns.md). Stateless, so
# a dynamic user; port 53 through CAP_NET_BIND_SERVICE, never root.
{
  config,
  lib,
  pkgs,
  ...
}: let
  cfg = config.services.ultracloud.dns;
  listen = import ./listen.nix {inherit lib;};
in {
  options.services.ultracloud.dns = import ./daemon-options.nix {inherit lib config pkgs;} {
    daemon = "dns";
    description = "uc-dns, the authoritative DNS server of the cluster's zones";
    firewallPurpose = "DNS over UDP and TCP; /health, /metrics over TCP";
    listenFrom = {
      dns = "listen";
      http = "httpListen";
    };
    settingsOptions = {
      listen = lib.mkOption {
        type = lib.types.listOf listen.hostPortType;
        example = ["10.0.0.10:53"];
        description = ''
          Addresses uc-dns answers DNS on, UDP and TCP, each
          "address:port" (an IPv6 address in brackets). Defaults to the
          node's first address on `cluster.dns.port`. Their ports are opened
          for UDP and TCP when `openFirewall` is set.
        '';
      };
      zones = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        example = ["example.test" "0.0.10.in-addr.arpa"];
        description = "The zones this node answers; queries for other zones are REFUSED. Defaults to every zone of `cluster.dns.zones`.";
      };
    };
  };

  config = lib.mkIf cfg.enable {
    environment.etc."ultracloud/dns.json" = {
      text = builtins.toJSON cfg.settings;
      mode = "0444";
    };

    systemd.services.uc-dns = {
      description = "UltraCloud DNS";
      wantedBy = ["multi-user.target"];
      after = ["network-online.target"];
      wants = ["network-online.target"];
      restartTriggers = [config.environment.etc."ultracloud/dns.json".text];
      # A network daemon with no state (./hardening.nix: sockets of
      # AF_INET/AF_INET6 and setsockopt's SO_REUSEPORT are in
      # @system-service), plus the one capability port 53 needs.
      serviceConfig =
        import ./hardening.nix
        // {
          ExecStart = "${cfg.package}/bin/uc-dns --config /etc/ultracloud/dns.json";
          DynamicUser = true;
          AmbientCapabilities = ["CAP_NET_BIND_SERVICE"];
          CapabilityBoundingSet = ["CAP_NET_BIND_SERVICE"];
          Restart = "on-failure";
          RestartSec = 2;
        };
    };

    networking.firewall = lib.mkIf cfg.openFirewall {
      allowedTCPPorts = listen.ports cfg.listen;
      allowedUDPPorts = listen.ports {inherit (cfg.listen) dns;};
    };
  };
}
