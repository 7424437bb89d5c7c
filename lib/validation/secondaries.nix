# A zone's secondaries are addresses uc-dns sends NOTIFY to and accepts zone
# transfers from: each must be an address exactly as uc-dns (Rust's
# `IpAddr`) parses it, listed once.
{
  lib,
  config,
  ...
}: let
  cfg = config.cluster;
  octet = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
  isIPv4 = s: builtins.match "${octet}\\.${octet}\\.${octet}\\.${octet}" s != null;
  # Up to eight groups of 1 to 4 hex digits, at most one `::`, the last
  # 32 bits optionally as IPv4; no zone index (`%eth0`).
  isIPv6 = s: let
    halves = lib.splitString "::" s;
    groupsOf = half:
      if half == ""
      then []
      else lib.splitString ":" half;
    groups = lib.concatMap groupsOf halves;
    count = builtins.length groups;
    v4Tail = count > 0 && isIPv4 (lib.last groups);
    hexGroups =
      if v4Tail
      then lib.init groups
      else groups;
    width =
      count
      + (
        if v4Tail
        then 1
        else 0
      );
  in
    lib.hasInfix ":" s
    && builtins.length halves <= 2
    && lib.all (g: builtins.match "[0-9a-fA-F]{1,4}" g != null) hexGroups
    && (
      if builtins.length halves == 2
      then width <= 7
      else width == 8
    );

  zoneRules = zone: z: let
    path = "cluster.dns.zones.\"${zone}\".secondaries";
    key = s: "${s.address} port ${toString s.port}";
    repeated = lib.filterAttrs (_: n: n > 1) (lib.foldl' (acc: s: acc // {${key s} = (acc.${key s} or 0) + 1;}) {} z.secondaries);
  in
    lib.imap0 (i: s: {
      assertion = isIPv4 s.address || isIPv6 s.address;
      message = "${path}.${toString i}.address = \"${s.address}\" is not an IPv4 or IPv6 address; write the secondary's address alone (\"192.0.2.53\", \"2001:db8::53\"), without brackets, port or name (the port goes in ${path}.${toString i}.port).";
    })
    z.secondaries
    ++ lib.mapAttrsToList (k: n: {
      assertion = false;
      message = "${path} lists ${k} ${toString n} times; list each secondary once.";
    })
    repeated;
in {
  assertions = lib.concatLists (lib.mapAttrsToList zoneRules cfg.dns.zones);
}
