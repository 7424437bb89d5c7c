# Just enough IP arithmetic for validation: IPv4 parsing and CIDR membership,
# and a syntactic check for IPv6.
{lib}: let
  octets = s: let
    parts = builtins.match "([0-9]{1,3})\\.([0-9]{1,3})\\.([0-9]{1,3})\\.([0-9]{1,3})" s;
  in
    if parts == null
    then null
    else let
      ints = map lib.toInt parts;
    in
      if lib.all (o: o <= 255) ints
      then ints
      else null;

  pow2 = n:
    if n == 0
    then 1
    else 2 * pow2 (n - 1);
in rec {
  inherit octets;

  isIPv4 = s: builtins.isString s && octets s != null;

  isIPv6 = s:
    builtins.isString s
    && builtins.match "[0-9a-fA-F:]+(%[a-zA-Z0-9]+)?" s != null
    && lib.hasInfix ":" s
    && builtins.length (lib.splitString "::" s) <= 2;

  isIP = s: isIPv4 s || isIPv6 s;

  ipv4ToInt = s: lib.foldl' (acc: o: acc * 256 + o) 0 (octets s);

  parseCidr = s: let
    parts = builtins.match "([^/]+)/([0-9]{1,3})" s;
  in
    if parts == null
    then null
    else let
      address = builtins.elemAt parts 0;
      prefix = lib.toInt (builtins.elemAt parts 1);
    in
      if isIPv4 address && prefix <= 32
      then {
        family = 4;
        inherit address prefix;
      }
      else if isIPv6 address && prefix <= 128
      then {
        family = 6;
        inherit address prefix;
      }
      else null;

  isCidr = s: builtins.isString s && parseCidr s != null;

  # True when an IPv4 address lies inside an IPv4 CIDR; IPv6 is not checked
  # (true) because the schema does not do IPv6 arithmetic.
  cidrContains = cidr: address: let
    net = parseCidr cidr;
    size = pow2 (32 - net.prefix);
  in
    if net == null || net.family != 4 || !(isIPv4 address)
    then true
    else (ipv4ToInt address) / size == (ipv4ToInt net.address) / size;
}
