# Declarations of exactly the NixOS options UltraCloud's modules set, copied in
# name and type from nixpkgs so that our modules evaluate offline and a
# misspelt option fails:
#   environment.etc        nixos/modules/system/etc/etc.nix
#   assertions, warnings   nixos/modules/misc/assertions.nix
#   networking.hostName    nixos/modules/tasks/network-interfaces.nix
{lib, ...}: let
  inherit (lib) mkOption types;
in {
  options = {
    assertions = mkOption {
      type = types.listOf types.unspecified;
      internal = true;
      default = [];
    };
    warnings = mkOption {
      type = types.listOf types.str;
      internal = true;
      default = [];
    };
    networking.hostName = mkOption {
      type = types.strMatching "^$|^[[:alnum:]]([[:alnum:]_-]{0,61}[[:alnum:]])?$";
      default = "nixos"; # nixpkgs: config.system.nixos.distroId
    };
    environment.etc = mkOption {
      default = {};
      type = types.attrsOf (types.submodule ({
        name,
        config,
        ...
      }: {
        options = {
          enable = mkOption {
            type = types.bool;
            default = true;
          };
          target = mkOption {
            type = types.str;
            default = name;
          };
          text = mkOption {
            type = types.nullOr types.lines;
            default = null;
          };
          source = mkOption {type = types.path;};
          mode = mkOption {
            type = types.str;
            default = "symlink";
          };
          uid = mkOption {
            type = types.int;
            default = 0;
          };
          gid = mkOption {
            type = types.int;
            default = 0;
          };
          user = mkOption {
            type = types.str;
            default = "+${toString config.uid}";
          };
          group = mkOption {
            type = types.str;
            default = "+${toString config.gid}";
          };
        };
      }));
    };
  };
}
