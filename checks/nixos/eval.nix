# Builds each node's NixOS configuration of a cluster through mkCluster, with
# `nixosSystem` replaced by an evaluation of our modules against the NixOS
# option declarations in ./options.nix. Evaluates to the list of failures:
# [] when every node's /etc/ultracloud/<daemon>.json holds exactly
# manifest.nodes.<node>.daemons.<daemon> and nothing else under ultracloud/,
# and the daemons' units, users, firewall ports and `listen` options match
# (uc-dns: its DNS ports open for UDP too, a dynamic user with only
# CAP_NET_BIND_SERVICE; uc-lb: the same user and capability, and its
# listeners' ports open, TCP or UDP by protocol).
# (./system.nix is the offline nixosSystem; ./override.nix tests overrides.)
{
  nixpkgsLib,
  modules,
}: let
  inherit (import ./system.nix {inherit nixpkgsLib;}) lib package mkCluster;
  listen = import ../../modules/listen.nix {inherit lib;};
  cluster = mkCluster modules;

  nodeFailures = name: system: let
    inherit (system) config;
    daemons = cluster.manifest.nodes.${name}.daemons;
    hasRole = role: builtins.elem role cluster.manifest.nodes.${name}.roles;
    ours = lib.filterAttrs (path: _: lib.hasPrefix "ultracloud/" path) config.environment.etc;
    expected = lib.mapAttrs' (d: _: lib.nameValuePair "ultracloud/${d}.json" null) daemons;
    failedAssertions = builtins.filter (a: !a.assertion) config.assertions;
    # The manifest's listen addresses, parsed by the modules' one parser.
    listenOf = d:
      if d == "store"
      then
        lib.mapAttrs (field: urls: map (listen.parse "manifest.nodes.${name}.daemons.store.${field}") urls) {
          client = daemons.store.listenClientUrls;
          peer = daemons.store.listenPeerUrls;
          metrics = daemons.store.listenMetricsUrls;
        }
      else
        {http = [(listen.parse "manifest.nodes.${name}.daemons.${d}.httpListen" daemons.${d}.httpListen)];}
        // lib.optionalAttrs (d == "dns") {
          dns = map (listen.parse "manifest.nodes.${name}.daemons.dns.listen") daemons.dns.listen;
        }
        // lib.optionalAttrs (d == "lb") {
          tcp = lbListeners ["tcp" "http" "https"];
          udp = lbListeners ["udp"];
        };
    # The node's listeners of those protocols as {address, port}: from the
    # manifest's declarations, a null address being the node's first.
    lbListeners = protocols:
      map (l: {
        address =
          if l.address != null
          then l.address
          else builtins.head cluster.manifest.nodes.${name}.addresses;
        inherit (l) port;
      }) (builtins.filter (l: builtins.elem l.protocol protocols)
        (map (l: cluster.manifest.lb.listeners.${l}) daemons.lb.listeners));
    # TCP: every listen address but uc-lb's UDP listeners. UDP: uc-dns'
    # DNS ports and uc-lb's UDP listeners.
    portsOf = d: listen.ports (removeAttrs (listenOf d) ["udp"]);
    udpPortsOf = d:
      listen.ports (builtins.intersectAttrs {
        dns = null;
        udp = null;
      } (listenOf d));
    # A daemon that binds below 1024 without root: a dynamic user whose
    # ambient capabilities and bounding set are exactly CAP_NET_BIND_SERVICE.
    lowPortChecks = d: what: let
      unit = config.systemd.services."uc-${d}".serviceConfig;
    in
      lib.optionals (daemons ? ${d}) (
        map (port: "${name}: the firewall does not open uc-${d}'s port ${toString port} for UDP")
        (builtins.filter (port: !(builtins.elem port config.networking.firewall.allowedUDPPorts)) (udpPortsOf d))
        ++ lib.optional (!(unit.DynamicUser or false) || unit ? User)
        "${name}: uc-${d} does not run as a dynamic user (it must not run as root)"
        ++ lib.optional ((unit.AmbientCapabilities or null) != ["CAP_NET_BIND_SERVICE"] || (unit.CapabilityBoundingSet or null) != ["CAP_NET_BIND_SERVICE"])
        "${name}: uc-${d} may not bind ${what}: its ambient capabilities and bounding set must be exactly CAP_NET_BIND_SERVICE"
      );
    unitChecks = d: args: let
      unit = config.systemd.services."uc-${d}" or null;
    in
      if daemons ? ${d}
      then
        lib.optional (unit == null || unit.serviceConfig.ExecStart != "${package}/bin/uc-${d} --config /etc/ultracloud/${d}.json${args}")
        "${name}: systemd.services.uc-${d} does not run ${package}/bin/uc-${d} on /etc/ultracloud/${d}.json"
        ++ lib.optional (!(builtins.elem "multi-user.target" (unit.wantedBy or [])))
        "${name}: uc-${d} is not wanted by multi-user.target"
        ++ map (port: "${name}: the firewall does not open uc-${d}'s port ${toString port}")
        (builtins.filter (port: !(builtins.elem port config.networking.firewall.allowedTCPPorts)) (portsOf d))
        ++ lib.optional (config.services.ultracloud.${d}.listen != listenOf d)
        "${name}: services.ultracloud.${d}.listen is ${builtins.toJSON config.services.ultracloud.${d}.listen}, the manifest's listen addresses are ${builtins.toJSON (listenOf d)}"
      else lib.optional (unit != null) "${name}: runs uc-${d} although the manifest gives it no ${d}";
  in
    map (a: "${name}: assertion failed: ${a.message}") failedAssertions
    ++ unitChecks "store" ""
    ++ lib.optional (daemons ? store && (config.systemd.services.uc-store.serviceConfig.StateDirectory or null) != "ultracloud/store")
    "${name}: uc-store has no state directory for ${daemons.store.dataDir or "its data"}"
    ++ unitChecks "deployer" ""
    ++ unitChecks "scheduler" " run"
    ++ lib.optional (daemons ? scheduler && !(config.systemd.services.uc-scheduler.serviceConfig.DynamicUser or false))
    "${name}: uc-scheduler does not run as a dynamic user"
    ++ unitChecks "iam" ""
    ++ lib.optional (daemons ? iam && !(config.systemd.services.uc-iam.serviceConfig.DynamicUser or false))
    "${name}: uc-iam does not run as a dynamic user"
    ++ lib.optional (daemons ? iam && (config.systemd.services.uc-iam.serviceConfig.StateDirectory or null) != "ultracloud/iam")
    "${name}: uc-iam has no state directory for its signing key"
    ++ unitChecks "nix-agent" " run"
    ++ unitChecks "node-agent" ""
    ++ unitChecks "dns" ""
    ++ lowPortChecks "dns" "port 53"
    ++ unitChecks "lb" ""
    ++ lowPortChecks "lb" "a listener's port below 1024 (80, 443)"
    ++ lib.optional (daemons ? lb && (config.systemd.services.uc-lb.serviceConfig.LimitNOFILE or 0) < 65536)
    "${name}: uc-lb keeps systemd's soft limit of 1024 descriptors (two per proxied connection)"
    ++ lib.optional (daemons
      ? node-agent
      && (config.systemd.services.uc-node-agent.serviceConfig.KillMode or null) != "process")
    "${name}: stopping uc-node-agent would kill the instances it adopts on restart"
    ++ lib.optional (daemons
      ? node-agent
      && (config.systemd.services.uc-node-agent.serviceConfig.StateDirectory or null) != "ultracloud/node-agent")
    "${name}: uc-node-agent has no state directory for ${daemons.node-agent.stateDir or "its instances"}"
    ++ lib.optional (daemons ? deployer && !(config.users.users.ultracloud-deployer.isSystemUser or false))
    "${name}: uc-deployer has no system user"
    ++ lib.optional (daemons ? nix-agent && config.systemd.services.uc-nix-agent.restartIfChanged)
    "${name}: uc-nix-agent would be restarted inside its own activation"
    ++ lib.optional (config.networking.hostName != name) "${name}: networking.hostName is ${config.networking.hostName}"
    # Role profiles: one setting each shows the profile is in.
    ++ lib.optional (hasRole "edge" && config.boot.kernel.sysctl."net.ipv4.ip_forward" or null != 1)
    "${name}: an edge node without the edge profile (net.ipv4.ip_forward)"
    ++ lib.optional (hasRole "worker" && !(config.boot.kernel.sysctl ? "fs.inotify.max_user_watches"))
    "${name}: a worker without the worker profile (inotify limits)"
    ++ lib.optional (hasRole "control-plane" != builtins.elem package config.environment.systemPackages)
    "${name}: the uc CLI is installed exactly on control-plane nodes (control-plane profile)"
    ++ lib.optional (builtins.attrNames ours != builtins.attrNames expected)
    "${name}: /etc has ${builtins.toJSON (builtins.attrNames ours)}, expected ${builtins.toJSON (builtins.attrNames expected)}"
    ++ lib.concatLists (lib.mapAttrsToList (d: settings: let
      file = ours."ultracloud/${d}.json" or null;
    in
      lib.optional (file == null || builtins.fromJSON file.text != settings || file.mode != "0444")
      "${name}: /etc/ultracloud/${d}.json differs from manifest.nodes.${name}.daemons.${d}")
    daemons);
  installerFailures = let
    inherit (cluster.installer) config;
    unit = config.systemd.services.uc-install or {};
    deployers = lib.concatLists (lib.mapAttrsToList (_: n:
      lib.optional (n.daemons ? deployer) "http://${n.daemons.deployer.httpListen}")
    cluster.manifest.nodes);
    rendered = builtins.fromJSON (config.environment.etc."ultracloud/installer.json".text or "{}");
  in
    lib.optional (!(lib.hasSuffix "uc-install.sh" (unit.serviceConfig.ExecStart or "")))
    "installer: no uc-install unit running profiles/installer/uc-install.sh"
    ++ lib.optional (!(builtins.elem "multi-user.target" (unit.wantedBy or [])))
    "installer: uc-install does not start at boot"
    ++ lib.optional ((rendered.deployers or null) != deployers)
    "installer: /etc/ultracloud/installer.json names ${builtins.toJSON (rendered.deployers or null)}, the manifest's deployers are ${builtins.toJSON deployers}";
in
  lib.concatLists (lib.mapAttrsToList nodeFailures cluster.nixosConfigurations)
  ++ installerFailures
