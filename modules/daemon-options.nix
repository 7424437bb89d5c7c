# The options every UltraCloud daemon module has, so they read the same:
# `enable`, `package`, `settings`, `listen` and `openFirewall`.
#
# `settings` is an RFC 42 settings option: JSON-typed and free-form, with the
# keys an operator is likely to change declared (typed and documented).
# modules/default.nix sets every leaf of the node's manifest projection at
# `mkDefault` priority, so a definition of one key replaces that key only
# and the rest of the projection stays. It is written to
# /etc/ultracloud/<daemon>.json as is.
#
# `listen` is read-only: the listen addresses of `settings` parsed once
# (./listen.nix) into {address, port}, for the firewall and for anything
# else that needs a port. Derived rather than settable, so the file the
# daemon reads and the ports opened for it cannot disagree. A daemon whose
# sockets are not all in its settings adds the others as `derivedListen`
# (uc-lb: its listeners' ports, which are in the manifest).
{
  lib,
  config,
  pkgs,
}: {
  daemon,
  description,
  firewallPurpose,
  # listen.<name> is parsed from settings.<field> (a string or a list of them).
  listenFrom ? {http = "httpListen";},
  # listen.<name> computed by the daemon's module rather than parsed from
  # settings: {<name> = {value = [{address, port}]; from = "where from";};}.
  derivedListen ? {},
  # Declared keys of `settings` besides httpListen (which every daemon
  # listening from it gets).
  settingsOptions ? {},
}: let
  inherit (lib) mkOption mkEnableOption types;
  listen = import ./listen.nix {inherit lib;};
  cfg = config.services.ultracloud.${daemon};
  fields = lib.concatStringsSep ", " (map (f: "`settings.${f}`") (builtins.attrValues listenFrom));
  sources =
    lib.mapAttrsToList (name: f: "`${name}` from `${f}`") listenFrom
    ++ lib.mapAttrsToList (name: d: "`${name}` from ${d.from}") derivedListen;
in {
  enable = mkEnableOption description;
  package = mkOption {
    type = types.package;
    default = config.ultracloud.package;
    defaultText = lib.literalExpression "config.ultracloud.package";
    description = "Package providing `bin/uc-${daemon}`.";
  };
  settings = mkOption {
    type = types.submodule {
      freeformType = (pkgs.formats.json {}).type;
      options =
        lib.optionalAttrs (listenFrom ? http) {
          httpListen = mkOption {
            type = listen.hostPortType;
            example = "0.0.0.0:7480";
            description = ''
              Address and port of uc-${daemon}'s HTTP server (/health,
              /metrics, …): "address:port", an IPv6 address in brackets.
              Its port is opened when `openFirewall` is set.
            '';
          };
        }
        // settingsOptions;
    };
    default = {};
    description = ''
      uc-${daemon}'s config, written to /etc/ultracloud/${daemon}.json.
      Every key of the node's manifest projection
      (`manifest.nodes.<node>.daemons.${daemon}`) is set here at `mkDefault`
      priority, one definition per leaf: setting a key (for example in
      `cluster.nodes.<node>.extraModules`) replaces that key and keeps all
      the others. Keys not declared below are free-form JSON; the daemon
      refuses keys it does not know.
    '';
  };
  listen = mkOption {
    type = types.attrsOf (types.listOf listen.endpoint);
    readOnly = true;
    default =
      lib.mapAttrs (_: field:
        map (listen.parse "services.ultracloud.${daemon}.settings.${field}") (lib.toList cfg.settings.${field}))
      listenFrom
      // lib.mapAttrs (_: d: d.value) derivedListen;
    defaultText = lib.literalMD "parsed from ${fields}${lib.optionalString (derivedListen != {}) "; ${lib.concatStringsSep ", " (lib.mapAttrsToList (name: d: "`${name}` from ${d.from}") derivedListen)}"}";
    example = lib.literalExpression ''{http = [{address = "10.0.0.1"; port = 7480;}];}'';
    description = ''
      Where uc-${daemon} listens, parsed from ${fields} into
      `{address, port}` values (one list per setting: ${lib.concatStringsSep ", " sources}).
      Read-only: change the settings instead.
    '';
  };
  openFirewall = mkOption {
    type = types.bool;
    default = true;
    description = "Open the ports of ${fields} (${firewallPurpose}).";
  };
}
