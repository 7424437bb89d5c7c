# Names that point elsewhere in the schema must point at something declared.
{
  lib,
  config,
  topology,
  ...
}: let
  cfg = config.cluster;
  list = names: builtins.toJSON names;
  nodeRefs = path: names:
    map (n: {
      assertion = cfg.nodes ? ${n};
      message = "${path}: \"${n}\" is not a node in cluster.nodes (known: ${list (builtins.attrNames cfg.nodes)}); fix the name or declare the node.";
    })
    names;

  # Backends (service, ports, endpoints) are checked in lb.nix.
  listenerRules = name: l: let
    path = "cluster.lb.listeners.${name}";
  in
    [
      {
        assertion = l.protocol != "https" || (l.tls.certificateFile != null && l.tls.keyFile != null);
        message = "${path}.protocol = \"https\" needs tls.certificateFile and tls.keyFile (paths on the node).";
      }
      {
        assertion = l.nodes != [];
        message = "${path} runs on no node: cluster.lb.nodes is empty (no `edge` node). Give a node the `edge` role or set ${path}.nodes.";
      }
    ]
    ++ nodeRefs "${path}.nodes" l.nodes;

  zoneRules = zone: z:
    lib.concatLists (lib.imap0 (i: r: let
        path = "cluster.dns.zones.\"${zone}\".records.${toString i}";
      in [
        {
          assertion = r.service == null || cfg.services ? ${r.service};
          message = "${path}.service = \"${toString r.service}\" is not a service in cluster.services (known: ${list (builtins.attrNames cfg.services)}); fix the name or declare the service.";
        }
        {
          assertion = (r.service != null) != (r.values != []);
          message = "${path} (${r.name} ${r.type}): set exactly one of values or service.";
        }
        {
          assertion = r.service == null || builtins.elem r.type ["A" "AAAA"];
          message = "${path}.type = \"${r.type}\": a record answered from a service must be A or AAAA.";
        }
      ])
      z.records)
    ++ map (p: {
      assertion = lib.hasSuffix ".arpa" zone;
      message = "cluster.dns.zones.\"${zone}\".ptrPatterns: PTR patterns belong in a reverse zone (*.in-addr.arpa), not in \"${zone}\".";
    })
    z.ptrPatterns;

  publishRules = name: svc: let
    zone = topology.publishZone svc;
  in
    lib.optional svc.publish.dns.enable {
      assertion = zone != null && cfg.dns.zones ? ${zone};
      message =
        if zone == null
        then "cluster.services.${name}.publish.dns.zone is unset and there is not exactly one forward zone (${list topology.forwardZones}); name the zone."
        else "cluster.services.${name}.publish.dns.zone = \"${zone}\" is not a zone in cluster.dns.zones (known: ${list (builtins.attrNames cfg.dns.zones)}).";
    };
in {
  assertions =
    lib.concatLists (lib.mapAttrsToList listenerRules cfg.lb.listeners)
    ++ lib.concatLists (lib.mapAttrsToList zoneRules cfg.dns.zones)
    ++ lib.concatLists (lib.mapAttrsToList publishRules cfg.services)
    ++ nodeRefs "cluster.rollout.canary" cfg.rollout.canary
    ++ nodeRefs "cluster.dns.servers" cfg.dns.servers
    ++ nodeRefs "cluster.lb.nodes" cfg.lb.nodes;
}
