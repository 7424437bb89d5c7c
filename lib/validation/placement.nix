# A service must be placeable: enough eligible nodes, ports that cannot clash
# between its own instances, and a health check that refers to a real port.
{
  lib,
  config,
  topology,
  ...
}: let
  cfg = config.cluster;
  rules = name: svc: let
    path = "cluster.services.${name}";
    e = topology.eligibility svc;
    eligibleCount = builtins.length e.eligible;
    why =
      if e.rejected == {}
      then ""
      else " Rejected nodes: ${lib.concatStringsSep "; " (lib.mapAttrsToList (n: r: "${n} ${r}") e.rejected)}.";
    hc = svc.healthCheck;
    hcPort =
      if hc == null
      then null
      else if hc.port != null
      then hc.port
      else topology.defaultPort svc;
  in
    [
      {
        assertion = !svc.placement.antiAffinity || svc.replicas <= eligibleCount;
        message = "${path}.replicas = ${toString svc.replicas}, but only ${toString eligibleCount} node(s) are eligible (${builtins.toJSON e.eligible}) and placement.antiAffinity allows one instance per node.${why} Lower replicas, or widen placement.roles / placement.labels.";
      }
      {
        assertion = svc.placement.antiAffinity || svc.replicas == 0 || eligibleCount > 0;
        message = "${path}: no node is eligible for its ${toString svc.replicas} replica(s).${why} Widen placement.roles / placement.labels or lower resources.";
      }
      {
        assertion = svc.placement.antiAffinity || svc.replicas <= 1 || svc.ports == {};
        message = "${path}: placement.antiAffinity = false with fixed ports and ${toString svc.replicas} replicas lets two instances land on one node and clash on a port; set placement.antiAffinity = true.";
      }
      {
        assertion = svc.package == null || svc.storePath == null;
        message = "${path}: set either package or storePath, not both.";
      }
    ]
    ++ lib.optionals (hc != null) [
      {
        assertion = hc.type == "exec" || (hcPort != null && svc.ports ? ${hcPort});
        message =
          if hcPort == null
          then "${path}.healthCheck.port is unset and the service has ${toString (builtins.length (builtins.attrNames svc.ports))} ports; name one of ${builtins.toJSON (builtins.attrNames svc.ports)}."
          else "${path}.healthCheck.port = \"${hcPort}\" is not in ${path}.ports (${builtins.toJSON (builtins.attrNames svc.ports)}); name one of those ports.";
      }
      {
        assertion = hc.type != "exec" || hc.command != [];
        message = "${path}.healthCheck.type = \"exec\" needs healthCheck.command (an argv that exits 0 when healthy).";
      }
    ];
in {
  assertions = lib.concatLists (lib.mapAttrsToList rules cfg.services);
}
