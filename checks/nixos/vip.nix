# A listener on a VIP (an address of no node) with cluster.lb.bgp: the edge
# node's uc-lb gets CAP_NET_ADMIN and CAP_NET_RAW and the netlink and packet
# address families, and its BIRD 2 gets exactly the configuration that
# rust/crates/uc-lb/tests/bgp.rs runs (`lb_bird_config`): the VIP imported
# by a `direct` protocol as a /32 host route, exported to the peer. The
# `www` listener (the node's own address) is no VIP; a cluster without a
# VIP gets no BIRD and no extra capability.
# Evaluates to the list of failures; [] when all hold.
{nixpkgsLib}: let
  inherit (import ./system.nix {inherit nixpkgsLib;}) lib mkCluster;
  vipListener = {
    protocol = "tcp";
    port = 8443;
    address = "10.1.0.100";
    backends.service = "web";
  };
  withVip = mkCluster [
    ../../hosts/ha/cluster.nix
    {
      cluster.lb.listeners.vip = vipListener;
      cluster.lb.bgp = {
        enable = true;
        peers = [
          {
            address = "10.1.0.1";
            asn = 64512;
          }
        ];
      };
    }
  ];
  plain = mkCluster [../../hosts/ha/cluster.nix];
  # The XDP fast path on the same VIP: the capabilities and the bpf syscall
  # it loads with, and /proc/sys/net writable for the interface's forwarding.
  withXdp = mkCluster [
    ../../hosts/ha/cluster.nix
    {
      cluster.lb.listeners.vip =
        vipListener
        // {
          xdp = {
            enable = true;
            interface = "eth0";
          };
        };
    }
  ];
  xdpUnit = withXdp.nixosConfigurations.edge1.config.systemd.services.uc-lb.serviceConfig;
  edge1 = withVip.nixosConfigurations.edge1.config;
  unit = edge1.systemd.services.uc-lb.serviceConfig;
  expected = ''
    router id 10.1.0.31;
    protocol device { scan time 5; }
    protocol direct uc_vips {
      ipv4 { import where net ~ [ 10.1.0.100/32 ]; };
      interface "*";
    }
    protocol bgp peer0 {
      local as 65000;
      neighbor 10.1.0.1 as 64512;
      hold time 9;
      ipv4 { import none; export where proto = "uc_vips"; };
    }
  '';
  plainEdge = plain.nixosConfigurations.edge1.config;
  check = ok: message: lib.optional (!ok) message;
in
  check edge1.services.bird.enable "edge1: BIRD is not enabled for a VIP with cluster.lb.bgp.enable"
  ++ check (edge1.services.bird.package.name == "bird2") "edge1: BIRD is ${edge1.services.bird.package.name}, not bird2 (the one tested)"
  ++ check (edge1.services.bird.config == expected) "edge1: BIRD's config is\n${edge1.services.bird.config}\nexpected\n${expected}"
  ++ check (builtins.all (c: builtins.elem c unit.AmbientCapabilities && builtins.elem c unit.CapabilityBoundingSet) ["CAP_NET_BIND_SERVICE" "CAP_NET_ADMIN" "CAP_NET_RAW"]) "edge1: uc-lb lacks a VIP capability: ${builtins.toJSON unit.AmbientCapabilities}"
  ++ check (builtins.all (f: builtins.elem f unit.RestrictAddressFamilies) ["AF_NETLINK" "AF_PACKET"]) "edge1: uc-lb cannot open netlink or packet sockets: ${builtins.toJSON unit.RestrictAddressFamilies}"
  ++ check (!plainEdge.services.bird.enable) "edge1 without a VIP: BIRD is enabled"
  ++ check (plainEdge.systemd.services.uc-lb.serviceConfig.AmbientCapabilities == ["CAP_NET_BIND_SERVICE"]) "edge1 without a VIP: uc-lb has ${builtins.toJSON plainEdge.systemd.services.uc-lb.serviceConfig.AmbientCapabilities}"
  ++ check (builtins.all (c: builtins.elem c xdpUnit.AmbientCapabilities && builtins.elem c xdpUnit.CapabilityBoundingSet) ["CAP_BPF" "CAP_NET_ADMIN" "CAP_PERFMON" "CAP_NET_RAW"]) "edge1 with XDP: uc-lb lacks a capability: ${builtins.toJSON xdpUnit.AmbientCapabilities}"
  ++ check (builtins.elem "bpf" xdpUnit.SystemCallFilter && builtins.elem "@system-service" xdpUnit.SystemCallFilter) "edge1 with XDP: uc-lb's syscall filter is ${builtins.toJSON xdpUnit.SystemCallFilter}"
  ++ check (!xdpUnit.ProtectKernelTunables) "edge1 with XDP: /proc/sys is read-only, so uc-lb cannot turn on the interface's forwarding"
  ++ check (builtins.elem "AF_PACKET" xdpUnit.RestrictAddressFamilies) "edge1 with XDP on a VIP: no packet sockets for gratuitous ARP"
  ++ check (!(builtins.elem "bpf" unit.SystemCallFilter) && unit.ProtectKernelTunables) "edge1 without XDP: uc-lb may call bpf or write /proc/sys"
