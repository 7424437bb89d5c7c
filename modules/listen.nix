# Listen addresses in daemon settings, as typed {address, port}: the one
# parser of "addr:port" (httpListen), "[v6addr]:port" and URLs such as
# "http://addr:port" (the store's listen*Urls). The daemons read the strings;
# the modules (firewall ports, `services.ultracloud.<d>.listen`) and
# checks/nixos read these values. A function of lib, not a module.
{lib}: let
  inherit (lib) mkOption types;
  # addr:port, with an IPv6 address in brackets; groups: v6 address, other
  # address (IPv4 or name), port.
  hostPort = "(\\[([0-9A-Fa-f:.]+)]|([A-Za-z0-9._-]+)):([0-9]+)";
in rec {
  # What httpListen may hold, and its type.
  hostPortPattern = hostPort;
  hostPortType =
    types.strMatching hostPortPattern
    // {
      description = "listen address \"address:port\" (an IPv6 address in brackets)";
    };
  # What a listen URL may hold: http(s)://addr:port, with an optional "/".
  urlPattern = "https?://${hostPort}/?";
  urlType =
    types.strMatching urlPattern
    // {
      description = "listen URL \"http://address:port\" (an IPv6 address in brackets)";
    };

  # "10.0.0.1:7480", "[::1]:7480", "http://10.0.0.1:2379/" ->
  # {address = "10.0.0.1"; port = 7480;} (the brackets dropped). `what`
  # names the setting in the error.
  parse = what: s: let
    m = builtins.match "(https?://)?${hostPort}/?" s;
    port = lib.toInt (builtins.elemAt m 4);
  in
    if m == null
    then throw "${what}: ${builtins.toJSON s} is not a listen address; write \"address:port\", \"[IPv6 address]:port\" or \"http://address:port\"."
    else if port > 65535
    then throw "${what}: ${builtins.toJSON s} has port ${toString port}, above 65535."
    else {
      address =
        if builtins.elemAt m 2 != null
        then builtins.elemAt m 2
        else builtins.elemAt m 3;
      inherit port;
    };

  # The type of one parsed listen address.
  endpoint = types.submodule {
    options = {
      address = mkOption {
        type = types.str;
        description = "The address listened on (IPv6 without brackets).";
      };
      port = mkOption {
        type = types.port;
        description = "The port listened on (TCP; uc-dns listens on UDP too, uc-lb's `udp` listeners on UDP only).";
      };
    };
  };

  # Every port of a `services.ultracloud.<d>.listen` value, once each.
  ports = listen: lib.unique (map (e: e.port) (lib.concatLists (builtins.attrValues listen)));
}
