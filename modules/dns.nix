# services.ultracloud.dns: uc-dns on the nodes of `cluster.dns.servers`;
# answers the cluster's zones from the store (docs/dns.md). Stateless, so
# a dynamic user; port 53 through CAP_NET_BIND_SERVICE, never root. The
# DNSSEC keys of signed zones are read at run time from the paths in each
# zone's declaration, through `keyGroup`.
{
  config,
  lib,
  pkgs,
  ...
}: let
  cfg = config.services.ultracloud.dns;
  listen = import ./listen.nix {inherit lib;};
  inherit (config.ultracloud) manifest;
  # The zones this node serves that are declared signed.
  signed =
    if manifest == null
    then []
    else
      builtins.filter (z: (manifest.dns.zones.${z}.dnssec or {enable = false;}).enable)
      (builtins.filter (z: manifest.dns.zones ? ${z}) (cfg.settings.zones or []));
in {
  options.services.ultracloud.dns =
    import ./daemon-options.nix {inherit lib config pkgs;} {
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
    }
    // {
      keyGroup = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        example = "uc-dnssec";
        description = ''
          A group that can read the `dnssec.keyFile` of the signed zones
          this node serves, given to the unit as `SupplementaryGroups` (and
          declared, if nothing else declares it). uc-dns runs as a dynamic
          user and reads the keys at run time, so a key readable only by
          root cannot sign: make it readable by this group (mode 0640).
          The files must not be under /home, /root or /tmp, which the unit
          cannot see.
        '';
      };
    };

  config = lib.mkIf cfg.enable {
    warnings =
      lib.optional (signed != [] && cfg.keyGroup == null) ''
        uc-dns signs ${lib.concatStringsSep ", " signed} as a dynamic user, which reads ${lib.concatMapStringsSep ", " (z: toString manifest.dns.zones.${z}.dnssec.keyFile) signed} only if the file is world-readable: set services.ultracloud.dns.keyGroup to a group that can read the key files. Until it can read a key, uc-dns serves that zone unsigned and /health says degraded.'';

    users.groups = lib.mkIf (cfg.keyGroup != null) {${cfg.keyGroup} = {};};

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
        }
        // lib.optionalAttrs (cfg.keyGroup != null) {
          SupplementaryGroups = [cfg.keyGroup];
        };
    };

    networking.firewall = lib.mkIf cfg.openFirewall {
      allowedTCPPorts = listen.ports cfg.listen;
      allowedUDPPorts = listen.ports {inherit (cfg.listen) dns;};
    };
  };
}
