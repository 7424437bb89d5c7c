# services.ultracloud.lb: uc-lb on the nodes of `cluster.lb.nodes`; serves
# the listeners of `settings.listeners` from the store (docs/lb.md).
# Stateless, so a dynamic user; ports below 1024 through
# CAP_NET_BIND_SERVICE, never root. TLS files are read at run time from
# the paths in each listener, through `tlsGroup`. A listener address that
# is none of the node's is a VIP: uc-lb then also gets CAP_NET_ADMIN and
# CAP_NET_RAW (to add the address, send gratuitous ARP), and with
# `cluster.lb.bgp.enable` a BIRD 2 announces the VIPs this node holds.
{
  config,
  lib,
  pkgs,
  ...
}: let
  inherit (lib) mkOption types;
  cfg = config.services.ultracloud.lb;
  listen = import ./listen.nix {inherit lib;};
  inherit (config.ultracloud) manifest;
  declared =
    if manifest == null
    then {}
    else manifest.lb.listeners;
  # The declarations (manifest.lb.listeners) of the listeners this node
  # serves; names that are not there are an assertion below.
  served = map (name: declared.${name} // {inherit name;}) (builtins.filter (name: declared ? ${name}) cfg.settings.listeners);
  # A listener with no address binds the node's first address, as uc-lb does.
  endpoint = l: {
    address =
      if l.address != null
      then l.address
      else builtins.head manifest.nodes.${cfg.settings.node}.addresses;
    inherit (l) port;
  };
  on = protocols: map endpoint (builtins.filter (l: builtins.elem l.protocol protocols) served);
  https = builtins.filter (l: l.protocol == "https") served;

  # VIPs: the served listeners' addresses that are none of this node's
  # (uc-lb adds one to an interface while this node holds it).
  nodeAddresses =
    if manifest == null
    then []
    else manifest.nodes.${cfg.settings.node}.addresses or [];
  vips = lib.unique (map (l: l.address) (builtins.filter (l: l.address != null && !(builtins.elem l.address nodeAddresses)) served));
  isV6 = lib.hasInfix ":";
  vipCaps = lib.optionals (vips != []) ["CAP_NET_ADMIN" "CAP_NET_RAW"];
  # The XDP fast path: loading the program and its maps (CAP_BPF, the bpf
  # syscall, CAP_PERFMON for the verifier's pointer checks), attaching it
  # over netlink (CAP_NET_ADMIN) and turning on the interface's forwarding
  # in /proc/sys/net, which bpf_fib_lookup needs (ProtectKernelTunables off).
  xdp = builtins.any (l: l.xdp.enable or false) served;
  xdpCaps = lib.optionals xdp ["CAP_BPF" "CAP_NET_ADMIN" "CAP_PERFMON"];
  caps = lib.unique (["CAP_NET_BIND_SERVICE"] ++ vipCaps ++ xdpCaps);

  bgp =
    if manifest == null
    then {enable = false;}
    else manifest.lb.bgp or {enable = false;};
  # BIRD 2: a held VIP is a /32 (/128) address on an interface, which the
  # `direct` protocol sees as a host route; only the VIPs are imported, and
  # they go to every peer of their family. When uc-lb removes the address
  # (it lost the VIP, or stopped), the route is withdrawn. A hold time of
  # 9 s (BIRD's default is 240) bounds how long a dead node's route stays.
  birdConfig = let
    v4 = builtins.filter (v: !(isV6 v)) vips;
    v6 = builtins.filter isV6 vips;
    routerId = lib.findFirst (a: !(isV6 a)) null nodeAddresses;
    channel = family: length: list:
      lib.optionalString (list != []) "  ${family} { import where net ~ [ ${lib.concatMapStringsSep ", " (v: "${v}/${toString length}") list} ]; };\n";
    peer = i: p: let
      family =
        if isV6 p.address
        then "ipv6"
        else "ipv4";
    in ''
      protocol bgp peer${toString i} {
        local as ${toString bgp.asn};
        neighbor ${p.address} as ${toString p.asn};
        hold time 9;
        ${family} { import none; export where proto = "uc_vips"; };
      }
    '';
  in
    lib.optionalString (routerId != null) "router id ${routerId};\n"
    + "protocol device { scan time 5; }\n"
    + "protocol direct uc_vips {\n${channel "ipv4" 32 v4}${channel "ipv6" 128 v6}  interface \"*\";\n}\n"
    + lib.concatStrings (lib.imap0 peer bgp.peers);
in {
  options.services.ultracloud.lb =
    import ./daemon-options.nix {inherit lib config pkgs;} {
      daemon = "lb";
      description = "uc-lb, the load balancer serving the cluster's listeners";
      firewallPurpose = "/health, /metrics; the listeners' ports are opened too, TCP or UDP by protocol";
      derivedListen = {
        tcp = {
          value = on ["tcp" "http" "https"];
          from = "the `tcp`, `http` and `https` listeners of `settings.listeners` (their `address` and `port` in `ultracloud.manifest`; no address: the node's first)";
        };
        udp = {
          value = on ["udp"];
          from = "its `udp` listeners, likewise";
        };
      };
      settingsOptions.listeners = mkOption {
        type = types.listOf types.str;
        example = ["www"];
        description = ''
          Names of the listeners (`cluster.lb.listeners`) this node serves;
          uc-lb reads their declarations from the store. Defaults to those
          whose `nodes` include this node. Each must be a listener of
          `ultracloud.manifest`, whose port the firewall opens.
        '';
      };
    }
    // {
      tlsGroup = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "acme";
        description = ''
          A group that can read the `tls.certificateFile` and `tls.keyFile`
          of the `https` listeners, given to the unit as
          `SupplementaryGroups` (and declared, if nothing else declares
          it). uc-lb runs as a dynamic user and reads these files at run
          time, and again whenever they change, so a key readable only by
          root cannot be served: make it readable by this group, for
          example `security.acme`'s certificates with `"acme"` (mode 0640).
          The files must not be under /home, /root or /tmp, which the
          unit cannot see.
        '';
      };
    };

  config = lib.mkIf cfg.enable {
    assertions =
      map (name: {
        assertion = declared ? ${name};
        message =
          if manifest == null
          then "services.ultracloud.lb.settings.listeners names \"${name}\", but ultracloud.manifest is not set, so its port is unknown; set ultracloud.manifest (mkCluster does) to the cluster that declares it."
          else "services.ultracloud.lb.settings.listeners names \"${name}\", which is not a listener of cluster \"${manifest.cluster.name}\" (listeners: ${builtins.toJSON (builtins.attrNames declared)}); declare it in cluster.lb.listeners or remove it.";
      })
      cfg.settings.listeners;

    warnings =
      lib.optional (https != [] && cfg.tlsGroup == null) ''
        uc-lb serves the https listener(s) ${lib.concatMapStringsSep ", " (l: l.name) https} as a dynamic user, which reads ${lib.concatMapStringsSep ", " (l: toString l.tls.keyFile) https} only if the file is world-readable: set services.ultracloud.lb.tlsGroup to a group that can read the certificate and key files (for example "acme").'';

    environment.etc."ultracloud/lb.json" = {
      text = builtins.toJSON cfg.settings;
      mode = "0444";
    };

    users.groups = lib.mkIf (cfg.tlsGroup != null) {${cfg.tlsGroup} = {};};

    systemd.services.uc-lb = {
      description = "UltraCloud load balancer";
      wantedBy = ["multi-user.target"];
      after = ["network-online.target"];
      wants = ["network-online.target"];
      restartTriggers = [config.environment.etc."ultracloud/lb.json".text];
      # A network daemon with no state (./hardening.nix: TCP and UDP
      # sockets of AF_INET/AF_INET6, setsockopt's SO_REUSEADDR, all in
      # @system-service), plus the one capability a port below 1024
      # needs. Always granted: a listener's port can change in the store,
      # and uc-lb rebinds live, before this node's system is switched.
      serviceConfig =
        import ./hardening.nix
        // {
          ExecStart = "${cfg.package}/bin/uc-lb --config /etc/ultracloud/lb.json";
          DynamicUser = true;
          AmbientCapabilities = caps;
          CapabilityBoundingSet = caps;
          # Each proxied TCP connection holds two descriptors (client and
          # backend); systemd's default soft limit (1024) would cap it near
          # 500. uc-lb does not raise it itself.
          LimitNOFILE = 524288;
          Restart = "on-failure";
          RestartSec = 2;
        }
        // lib.optionalAttrs (cfg.tlsGroup != null) {
          SupplementaryGroups = [cfg.tlsGroup];
        }
        # Addresses go up and down over rtnetlink; gratuitous ARP is sent on
        # a packet socket.
        // lib.optionalAttrs (vips != []) {
          RestrictAddressFamilies = ["AF_INET" "AF_INET6" "AF_UNIX" "AF_NETLINK" "AF_PACKET"];
        }
        // lib.optionalAttrs xdp {
          RestrictAddressFamilies = ["AF_INET" "AF_INET6" "AF_UNIX" "AF_NETLINK"] ++ lib.optional (vips != []) "AF_PACKET";
          SystemCallFilter = ["@system-service" "bpf"];
          ProtectKernelTunables = false;
        };
    };

    services.bird = lib.mkIf (bgp.enable && vips != []) {
      enable = true;
      # BIRD 2, as tested (Debian's bird2 in rust/crates/uc-lb/tests/bgp.rs);
      # nixpkgs' default is BIRD 3.
      package = pkgs.bird2;
      config = birdConfig;
    };

    networking.firewall = lib.mkIf cfg.openFirewall {
      allowedTCPPorts = listen.ports (removeAttrs cfg.listen ["udp"]);
      allowedUDPPorts = listen.ports {inherit (cfg.listen) udp;};
    };
  };
}
