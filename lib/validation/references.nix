# Names that point elsewhere in the schema must point at something declared.
{
  lib,
  config,
  topology,
  ucNet,
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
    ++ lib.concatLists (lib.imap0 (ptrPatternRules zone) z.ptrPatterns);

  # ptrPatterns: the address space a reverse zone's name spells, most
  # significant part first; null for a zone that is not one.
  reverseSpace = zone: let
    labels = lib.splitString "." (lib.toLower zone);
    count = builtins.length labels;
    parts = lib.reverseList (lib.take (count - 2) labels);
    suffix = lib.drop (count - 2) labels;
    isOctet = l: builtins.match "0|[1-9][0-9]{0,2}" l != null && lib.toInt l <= 255;
  in
    if count >= 2 && suffix == ["in-addr" "arpa"] && builtins.length parts <= 4 && lib.all isOctet parts
    then {
      family = 4;
      parts = map lib.toInt parts;
      text = "${lib.concatMapStringsSep "." toString (map lib.toInt parts ++ lib.genList (_: 0) (4 - builtins.length parts))}/${toString (8 * builtins.length parts)}";
    }
    else if count >= 2 && suffix == ["ip6" "arpa"] && builtins.length parts <= 32 && lib.all (l: builtins.match "[0-9a-f]" l != null) parts
    then {
      family = 6;
      inherit parts;
      text = let
        padded = lib.concatStrings parts + lib.concatStrings (lib.genList (_: "0") (lib.mod (4 - lib.mod (builtins.length parts) 4) 4));
        groups = lib.genList (i: builtins.substring (4 * i) 4 padded) (builtins.stringLength padded / 4);
      in "${lib.concatStringsSep ":" groups}${lib.optionalString (builtins.length parts < 32) "::"}/${toString (4 * builtins.length parts)}";
    }
    else null;

  # The 32 nibbles of an IPv6 address (as net.isIPv6 accepts it); null if
  # it does not spell 8 groups.
  ipv6Nibbles = address: let
    halves = lib.splitString "::" (lib.toLower (builtins.head (lib.splitString "%" address)));
    groups = s:
      if s == ""
      then []
      else lib.splitString ":" s;
    left = groups (builtins.head halves);
    right =
      if builtins.length halves == 2
      then groups (builtins.elemAt halves 1)
      else [];
    missing = 8 - builtins.length left - builtins.length right;
    all = left ++ lib.genList (_: "0") missing ++ right;
    ok = lib.all (g: builtins.stringLength g <= 4 && g != "") all && builtins.length all == 8 && (missing == 0 || builtins.length halves == 2);
  in
    if ok
    then lib.stringToCharacters (lib.concatMapStrings (lib.fixedWidthString 4 "0") all)
    else null;

  # The network's leading parts (octets or nibbles) that the zone's name fixes.
  networkParts = family: cidr:
    if family == 4
    then ucNet.octets cidr.address
    else ipv6Nibbles cidr.address;

  placeholders = {
    "4" = ["{a}" "{b}" "{c}" "{d}"];
    "6" = ["{ip}" "{hex}"];
  };
  familyName = family: "IPv${toString family}";

  ptrPatternRules = zone: i: p: let
    path = "cluster.dns.zones.\"${zone}\".ptrPatterns.${toString i}";
    space = reverseSpace zone;
    cidr = ucNet.parseCidr p.network;
    other = family: 10 - family;
    foreign = family: lib.filter (ph: lib.hasInfix ph p.pattern) placeholders.${toString (other family)};
    partBits = family:
      if family == 4
      then 8
      else 4;
    inside = let
      parts = networkParts space.family cidr;
    in
      parts
      != null
      && cidr.prefix >= partBits space.family * builtins.length space.parts
      && lib.take (builtins.length space.parts) parts == space.parts;
    reverseSuffix = family:
      if family == 4
      then "in-addr.arpa"
      else "ip6.arpa";
  in
    if space == null
    then [
      {
        assertion = false;
        message = "${path}: PTR patterns belong in a reverse zone named after the addresses it covers (under in-addr.arpa for IPv4, under ip6.arpa for IPv6), not in \"${zone}\".";
      }
    ]
    else if cidr == null
    then [] # The option's type refuses it.
    else if cidr.family != space.family
    then [
      {
        assertion = false;
        message = "${path}.network = \"${p.network}\" is an ${familyName cidr.family} network, but \"${zone}\" is an ${familyName space.family} reverse zone; declare the pattern in a zone under ${reverseSuffix cidr.family}.";
      }
    ]
    else [
      {
        assertion = inside;
        message = "${path}.network = \"${p.network}\" is not inside the addresses of \"${zone}\" (${space.text}); use a network inside it, or declare the pattern in the zone of its addresses.";
      }
      {
        assertion = foreign cidr.family == [];
        message = "${path}.pattern = \"${p.pattern}\" uses ${lib.concatStringsSep ", " (foreign cidr.family)}, placeholders of ${familyName (other cidr.family)} addresses, but ${p.network} is ${familyName cidr.family}; ${familyName cidr.family} patterns use ${lib.concatStringsSep ", " placeholders.${toString cidr.family}}.";
      }
    ];

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
