# One port (per protocol) has one owner on a node: daemons, LB listeners and
# every service that may be placed there.
{
  lib,
  config,
  topology,
  ...
}: let
  cfg = config.cluster;
  clashes = n: let
    byPort = lib.groupBy (p: "${toString p.port}/${p.protocol}") (topology.portsOn n);
  in
    lib.filterAttrs (_: users: builtins.length users > 1) byPort;
in {
  assertions = lib.concatLists (map (n:
    lib.mapAttrsToList (port: users: {
      assertion = false;
      message = "port ${port} is used twice on node ${n}: by ${lib.concatMapStringsSep " and " (u: u.owner) users}; give one of them another port (or keep the service off that node with placement).";
    }) (clashes n))
  topology.nodeNames);
}
