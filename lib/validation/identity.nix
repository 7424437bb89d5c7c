# A machine that phones home must match exactly one declared node.
{
  lib,
  config,
  ...
}: let
  cfg = config.cluster;
  claims = lib.concatLists (lib.mapAttrsToList (n: node:
    map (mac: {
      key = "MAC address ${mac}";
      option = "cluster.nodes.${n}.identity.macAddresses";
    })
    node.identity.macAddresses
    ++ lib.optional (node.identity.dmiSerial != null) {
      key = "DMI serial \"${node.identity.dmiSerial}\"";
      option = "cluster.nodes.${n}.identity.dmiSerial";
    })
  cfg.nodes);
  duplicates = lib.filterAttrs (_: cs: builtins.length cs > 1) (lib.groupBy (c: c.key) claims);
in {
  assertions =
    lib.mapAttrsToList (key: cs: {
      assertion = false;
      message = "${key} identifies more than one machine (${lib.concatMapStringsSep ", " (c: c.option) cs}); a machine at phone-home must match exactly one node, so remove it from all but one.";
    })
    duplicates;
}
