# Declarations of exactly the NixOS options UltraCloud's modules set, copied in
# name and type from nixpkgs so that our modules evaluate offline and a
# misspelt option fails:
#   environment.etc                 nixos/modules/system/etc/etc.nix
#   assertions, warnings            nixos/modules/misc/assertions.nix
#   networking.hostName             nixos/modules/tasks/network-interfaces.nix
#   networking.firewall.allowedTCPPorts, allowedUDPPorts
#                                   nixos/modules/services/networking/firewall.nix
#   systemd.services.<name>.*       nixos/lib/systemd-unit-options.nix (the subset we set)
#   users.users, users.groups       nixos/modules/config/users-groups.nix (the subset we set)
#   nix.package                     nixos/modules/config/nix.nix
#   systemd.package                 nixos/modules/system/boot/systemd.nix
#   environment.systemPackages      nixos/modules/config/system-path.nix
#   boot.kernel.sysctl              nixos/modules/config/sysctl.nix
#   services.journald.extraConfig   nixos/modules/system/boot/systemd/journald.nix
#   services.bird.{enable,package,config}
#                                   nixos/modules/services/networking/bird.nix
{lib, ...}: let
  inherit (lib) mkOption types;
  # nixos/lib/systemd-unit-options.nix
  unitOption = lib.mkOptionType {
    name = "systemd option";
    merge = loc: defs:
      if lib.any (def: lib.isList def.value) defs
      then lib.concatMap (def: lib.toList def.value) defs
      else lib.mergeEqualOption loc defs;
  };
  # nixos/modules/services/networking/firewall.nix
  canonicalizePortList = ports: lib.unique (builtins.sort builtins.lessThan ports);
  listOfStr = mkOption {
    type = types.listOf types.str;
    default = [];
  };
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
    nix.package = mkOption {type = types.package;};
    # nixos/modules/system/boot/systemd.nix (mkPackageOption pkgs "systemd")
    systemd.package = mkOption {type = types.package;};
    environment.systemPackages = mkOption {
      type = types.listOf types.package;
      default = [];
    };
    boot.kernel.sysctl = mkOption {
      type = types.submodule {
        freeformType = types.attrsOf (lib.mkOptionType {
          name = "sysctl option value";
          check = val: let
            checkType = x: lib.isBool x || lib.isString x || lib.isInt x || x == null;
          in
            checkType val || (val._type or "" == "override" && checkType val.content);
          merge = loc: defs: lib.mergeOneOption loc defs;
        });
      };
      default = {};
    };
    services.journald.extraConfig = mkOption {
      type = types.lines;
      default = "";
    };
    services.bird = {
      enable = lib.mkEnableOption "BIRD Internet Routing Daemon";
      # nixpkgs: lib.mkPackageOption pkgs "bird3" { }
      package = mkOption {type = types.package;};
      config = mkOption {type = types.lines;};
    };
    networking.firewall.allowedTCPPorts = mkOption {
      type = types.listOf types.port;
      default = [];
      apply = canonicalizePortList;
    };
    networking.firewall.allowedUDPPorts = mkOption {
      type = types.listOf types.port;
      default = [];
      apply = canonicalizePortList;
    };
    users.users = mkOption {
      default = {};
      type = types.attrsOf (types.submodule {
        options = {
          isSystemUser = mkOption {
            type = types.bool;
            default = false;
          };
          group = mkOption {
            type = types.str;
            default = "";
          };
          description = mkOption {
            type = types.passwdEntry types.str;
            default = "";
          };
        };
      });
    };
    users.groups = mkOption {
      default = {};
      type = types.attrsOf (types.submodule {});
    };
    systemd.services = mkOption {
      default = {};
      type = types.attrsOf (types.submodule {
        options = {
          description = mkOption {
            type = types.singleLineStr;
            default = "";
          };
          wantedBy = listOfStr;
          after = listOfStr;
          wants = listOfStr;
          path = mkOption {
            type = types.listOf (types.oneOf [types.package types.str]);
            default = [];
          };
          restartTriggers = mkOption {
            type = types.listOf types.unspecified;
            default = [];
          };
          restartIfChanged = mkOption {
            type = types.bool;
            default = true;
          };
          stopIfChanged = mkOption {
            type = types.bool;
            default = true;
          };
          serviceConfig = mkOption {
            type = types.attrsOf unitOption;
            default = {};
          };
        };
      });
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
