# Names become host names, DNS owners and store keys: they must be DNS labels.
{
  lib,
  config,
  ucTypes,
  ...
}: let
  cfg = config.cluster;
  labelRule = "use lower-case letters, digits and '-', at most 63 characters, neither starting nor ending with '-'";
  labelsIn = path: attrs:
    map (name: {
      assertion = ucTypes.isDnsLabel name;
      message = "${path}.\"${name}\": \"${name}\" is not a valid DNS label; rename it (${labelRule}).";
    }) (builtins.attrNames attrs);
in {
  assertions =
    [
      {
        assertion = ucTypes.isDnsLabel cfg.name;
        message = "cluster.name = \"${cfg.name}\" is not a valid DNS label; ${labelRule}.";
      }
    ]
    ++ labelsIn "cluster.nodes" cfg.nodes
    ++ labelsIn "cluster.services" cfg.services
    ++ labelsIn "cluster.lb.listeners" cfg.lb.listeners
    ++ labelsIn "cluster.networks.vlans" cfg.networks.vlans
    ++ map (zone: {
      assertion = ucTypes.isDnsName zone && !(lib.hasSuffix "." zone);
      message = "cluster.dns.zones.\"${zone}\": \"${zone}\" is not a valid zone name; write the apex without a trailing dot, each label ${labelRule}.";
    }) (builtins.attrNames cfg.dns.zones)
    ++ lib.concatLists (lib.mapAttrsToList (zone: z:
      lib.imap0 (i: r: {
        assertion = ucTypes.isRecordName r.name;
        message = "cluster.dns.zones.\"${zone}\".records.${toString i}.name = \"${r.name}\" is not a valid owner name; use `@` for the apex or labels relative to the zone (letters, digits, '-', a leading '_' or a lone '*').";
      })
      z.records)
    cfg.dns.zones);
}
