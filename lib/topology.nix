# Derived facts about a cluster config that validation and rendering share:
# which daemons run where, on which ports, and where services may be placed.
# Functions tolerate dangling names (validation reports those separately).
{lib}: cfg: let
  inherit (lib) filter elem attrNames concatMap optional optionals;
  net = import ./net.nix {inherit lib;};

  nodes = cfg.nodes;
  nodeNames = attrNames nodes;
  known = n: nodes ? ${n};
  hasRole = role: n: known n && elem role nodes.${n}.roles;
  tcp = port: owner: {
    inherit port owner;
    protocol = "tcp";
  };
in rec {
  inherit nodeNames;

  withRole = role: filter (hasRole role) nodeNames;

  primaryAddress = n: builtins.head nodes.${n}.addresses;

  hostPort = address: port:
    if net.isIPv6 address
    then "[${address}]:${toString port}"
    else "${address}:${toString port}";

  storeMembers = filter known cfg.store.members;
  storeClientUrls = map (m: "http://${hostPort (primaryAddress m) cfg.store.clientPort}") storeMembers;
  deployerUrls = map (n: "http://${hostPort (primaryAddress n) cfg.deployer.port}") (withRole "control-plane");

  # Daemons a node runs, in a stable order.
  daemonsOn = n:
    optional (elem n cfg.store.members) "store"
    ++ optionals (hasRole "control-plane" n) ["deployer" "scheduler"]
    ++ ["nix-agent" "node-agent"]
    ++ optional (elem n cfg.dns.servers) "dns"
    ++ optional (elem n cfg.lb.nodes) "lb"
    ++ optional (elem n cfg.iam.nodes) "iam";

  daemonPorts = {
    store = [
      (tcp cfg.store.clientPort "cluster.store.clientPort")
      (tcp cfg.store.peerPort "cluster.store.peerPort")
      (tcp cfg.store.metricsPort "cluster.store.metricsPort")
    ];
    deployer = [(tcp cfg.deployer.port "cluster.deployer.port")];
    scheduler = [(tcp cfg.scheduler.port "cluster.scheduler.port")];
    iam = [(tcp cfg.iam.httpPort "cluster.iam.httpPort")];
    nix-agent = [(tcp cfg.nixAgent.port "cluster.nixAgent.port")];
    node-agent = [(tcp cfg.nodeAgent.port "cluster.nodeAgent.port")];
    dns = [
      (tcp cfg.dns.port "cluster.dns.port")
      {
        port = cfg.dns.port;
        protocol = "udp";
        owner = "cluster.dns.port";
      }
      (tcp cfg.dns.httpPort "cluster.dns.httpPort")
    ];
    lb = [(tcp cfg.lb.httpPort "cluster.lb.httpPort")];
  };

  listenersOn = n: filter (l: elem n cfg.lb.listeners.${l}.nodes) (attrNames cfg.lb.listeners);

  listenerProtocol = l:
    if cfg.lb.listeners.${l}.protocol == "udp"
    then "udp"
    else "tcp";

  # Everything that may bind a port on node n: its daemons, its LB listeners,
  # and the ports of every service that may be placed on it.
  portsOn = n:
    concatMap (d: daemonPorts.${d}) (daemonsOn n)
    ++ map (l: {
      inherit (cfg.lb.listeners.${l}) port;
      protocol = listenerProtocol l;
      owner = "cluster.lb.listeners.${l}.port";
    }) (listenersOn n)
    ++ concatMap (s:
      lib.mapAttrsToList (p: def: {
        inherit (def) port protocol;
        owner = "cluster.services.${s}.ports.${p}";
      })
      cfg.services.${s}.ports)
    (filter (s: elem n (eligibility cfg.services.${s}).eligible) (attrNames cfg.services));

  # Why each node can or cannot take an instance of a service.
  eligibility = svc: let
    reason = n: let
      node = nodes.${n};
      want = svc.placement;
      missingLabels = lib.filterAttrs (k: v: (node.labels.${k} or null) != v) want.labels;
    in
      if !(lib.any (r: elem r node.roles) want.roles)
      then "has none of the roles ${lib.concatStringsSep ", " want.roles}"
      else if missingLabels != {}
      then "lacks label(s) ${lib.concatStringsSep ", " (lib.mapAttrsToList (k: v: "${k}=${v}") missingLabels)}"
      else if node.capacity.cpuMillis < svc.resources.cpuMillis
      then "has capacity.cpuMillis = ${toString node.capacity.cpuMillis} < ${toString svc.resources.cpuMillis} requested"
      else if node.capacity.memoryMiB < svc.resources.memoryMiB
      then "has capacity.memoryMiB = ${toString node.capacity.memoryMiB} < ${toString svc.resources.memoryMiB} requested"
      else null;
    reasons = lib.genAttrs nodeNames reason;
  in {
    eligible = filter (n: reasons.${n} == null) nodeNames;
    rejected = lib.filterAttrs (_: r: r != null) reasons;
  };

  # The forward zones a service may publish into when it names none.
  forwardZones = filter (z: !(lib.hasSuffix ".arpa" z)) (attrNames cfg.dns.zones);

  publishZone = svc:
    if svc.publish.dns.zone != null
    then svc.publish.dns.zone
    else if builtins.length forwardZones == 1
    then builtins.head forwardZones
    else null;

  # The single port a listener or health check means when it names none.
  defaultPort = svc: let
    names = attrNames svc.ports;
  in
    if builtins.length names == 1
    then builtins.head names
    else null;
}
