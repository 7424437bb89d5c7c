# Renders config.cluster into the manifest: one JSON document describing the
# whole cluster, read by uc-deployer and parsed by uc-types.
{
  lib,
  config,
  topology,
  ucSchemaVersion,
  ...
}: let
  inherit (lib) mapAttrs filter elem attrNames optional;
  cfg = config.cluster;
  layouts = import ../disko-layouts.nix;
  daemonsFor = import ./daemons.nix {
    inherit lib cfg topology;
    schemaVersion = ucSchemaVersion;
  };

  chunks = size: list:
    if list == []
    then []
    else [(lib.take size list)] ++ chunks size (lib.drop size list);

  renderInstall = install:
    if install.disko != null
    then {
      disk = null;
      layout = null;
      inherit (install) disko;
    }
    else if install.disk != null
    then {
      inherit (install) disk layout;
      disko = layouts.${install.layout} install.disk;
    }
    else null;

  renderNode = n: node: {
    inherit (node) roles addresses labels capacity;
    identity = {inherit (node.identity) macAddresses dmiSerial;};
    install = renderInstall node.install;
    daemons = daemonsFor n;
  };

  renderService = s: svc: let
    zone = topology.publishZone svc;
    hc = svc.healthCheck;
  in {
    exec = {
      package =
        if svc.package != null
        then "${svc.package}"
        else svc.storePath;
      inherit (svc) command;
    };
    inherit (svc) replicas resources ports environment;
    placement = {inherit (svc.placement) roles labels antiAffinity maxUnavailable;};
    healthCheck =
      if hc == null
      then null
      else {
        inherit (hc) type path command intervalSeconds timeoutSeconds failureThreshold;
        port =
          if hc.type == "exec"
          then null
          else if hc.port != null
          then hc.port
          else topology.defaultPort svc;
      };
    # Validation has refused Nix paths, so these are plain strings.
    inherit (svc) secretFiles;
    dns =
      if svc.publish.dns.enable
      then {
        inherit zone;
        inherit (svc.publish.dns) name;
        fqdn = "${svc.publish.dns.name}.${zone}.";
      }
      else null;
    listeners = filter (l: elem s (listenerServices cfg.lb.listeners.${l})) (attrNames cfg.lb.listeners);
    eligibleNodes = (topology.eligibility svc).eligible;
  };

  renderRecord = zone: r: {
    inherit (r) name type values service;
    ttl =
      if r.ttl != null
      then r.ttl
      else zone.ttl;
  };

  publishedIn = z:
    lib.mapAttrsToList (s: svc: {
      inherit (svc.publish.dns) name;
      type = "A";
      ttl = null;
      values = [];
      service = s;
    }) (lib.filterAttrs (_: svc: svc.publish.dns.enable && topology.publishZone svc == z) cfg.services);

  renderZone = z: zone: {
    inherit (zone) ttl soa nameservers ptrPatterns secondaries dnssec;
    records = map (renderRecord zone) (zone.records ++ publishedIn z);
  };

  renderListener = _: l: {
    inherit (l) protocol port address nodes balance healthCheck tls;
    inherit (l) proxyProtocol timeouts xdp backendTls;
    backends = renderBackends l.backends;
    routes =
      map (r: {
        inherit (r) host pathPrefix;
        backends = renderBackends r.backends;
      })
      l.routes;
  };

  # The services a listener sends traffic to (its backends and its routes').
  listenerServices = l: map (b: b.service) ([l.backends] ++ map (r: r.backends) l.routes);

  renderBackends = b: {
    inherit (b) service endpoints weights;
    servicePort =
      if b.service == null
      then null
      else if b.servicePort != null
      then b.servicePort
      else topology.defaultPort cfg.services.${b.service};
  };

  waves = let
    inherit (cfg.rollout) canary maxUnavailable;
    rest = filter (n: !(elem n canary)) topology.nodeNames;
    isMember = n: elem n cfg.store.members;
  in
    optional (canary != []) canary
    ++ chunks maxUnavailable (filter (n: !(isMember n)) rest)
    ++ chunks 1 (filter isMember rest);
in {
  manifest = {
    schemaVersion = ucSchemaVersion;
    cluster = {inherit (cfg) name;};
    networks = {
      management = {inherit (cfg.networks.management) cidr gateway resolvers vlan;};
      vlans = mapAttrs (_: v: {inherit (v) id cidr;}) cfg.networks.vlans;
    };
    nodes = mapAttrs renderNode cfg.nodes;
    services = mapAttrs renderService cfg.services;
    dns = {
      inherit (cfg.dns) servers port;
      zones = mapAttrs renderZone cfg.dns.zones;
    };
    lb = {
      inherit (cfg.lb) nodes;
      listeners = mapAttrs renderListener cfg.lb.listeners;
      bgp = {inherit (cfg.lb.bgp) enable asn peers;};
    };
    rollout = {
      inherit (cfg.rollout) canary maxUnavailable healthGateTimeoutSeconds drainTimeoutSeconds autoRevert switchAction;
      inherit waves;
    };
    store = {
      members =
        map (m: {
          name = m;
          clientUrl = "http://${topology.hostPort (topology.primaryAddress m) cfg.store.clientPort}";
          peerUrl = "http://${topology.hostPort (topology.primaryAddress m) cfg.store.peerPort}";
        })
        topology.storeMembers;
      inherit (cfg.store) clusterToken clientPort peerPort;
    };
  };
}
