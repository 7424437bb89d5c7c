# Every address belongs to one node, and the address daemons bind to is on the
# management network.
{
  lib,
  config,
  ucNet,
  ...
}: let
  cfg = config.cluster;
  owners = lib.concatLists (lib.mapAttrsToList (n: node:
    map (a: {
      address = a;
      node = n;
    })
    node.addresses)
  cfg.nodes);
  byAddress = lib.groupBy (o: o.address) owners;
  duplicates = lib.filterAttrs (_: os: builtins.length os > 1) byAddress;
in {
  assertions =
    lib.mapAttrsToList (address: os: {
      assertion = false;
      message = "cluster.nodes.<name>.addresses: ${address} is claimed ${toString (builtins.length os)} times (by ${lib.concatMapStringsSep ", " (o: "cluster.nodes.${o.node}") os}); give each node its own addresses.";
    })
    duplicates
    ++ lib.mapAttrsToList (n: node: let
      primary = builtins.head node.addresses;
    in {
      assertion = ucNet.cidrContains cfg.networks.management.cidr primary;
      message = "cluster.nodes.${n}.addresses: the first address ${primary} is outside cluster.networks.management.cidr = ${cfg.networks.management.cidr}; put the management address first or fix the network.";
    })
    cfg.nodes;
}
