# The options every UltraCloud daemon module has, so they read the same:
# `enable`, `package`, `settings` (the node's manifest projection, written to
# /etc/ultracloud/<daemon>.json) and `openFirewall`.
{
  lib,
  config,
}: {
  daemon,
  description,
  firewallPurpose,
  portsFrom ? "`settings.httpListen`",
}: let
  inherit (lib) mkOption mkEnableOption types;
in {
  enable = mkEnableOption description;
  package = mkOption {
    type = types.package;
    default = config.ultracloud.package;
    defaultText = lib.literalExpression "config.ultracloud.package";
    description = "Package providing `bin/uc-${daemon}`.";
  };
  settings = mkOption {
    type = types.attrsOf types.anything;
    description = ''
      Written to /etc/ultracloud/${daemon}.json; set from the node's manifest
      projection (`manifest.nodes.<node>.daemons.${daemon}`).
    '';
  };
  openFirewall = mkOption {
    type = types.bool;
    default = true;
    description = "Open the ports of ${portsFrom} (${firewallPurpose}).";
  };
}
