# cluster.networks: the management network every node sits on, and VLANs.
{
  lib,
  ucTypes,
  ...
}: let
  inherit (lib) mkOption types;
in {
  options.cluster.networks = {
    management = {
      cidr = mkOption {
        type = ucTypes.cidr;
        example = "10.0.0.0/24";
        description = "The management network; every node's first address must lie inside it.";
      };
      gateway = mkOption {
        type = types.nullOr ucTypes.ipAddress;
        default = null;
        example = "10.0.0.1";
        description = "Default gateway on the management network.";
      };
      resolvers = mkOption {
        type = types.listOf ucTypes.ipAddress;
        default = [];
        example = ["10.0.0.1"];
        description = "DNS resolvers the nodes use.";
      };
      vlan = mkOption {
        type = types.nullOr (types.ints.between 1 4094);
        default = null;
        description = "VLAN id of the management network, when it is tagged.";
      };
    };

    vlans = mkOption {
      type = types.attrsOf (types.submodule {
        options = {
          id = mkOption {
            type = types.ints.between 1 4094;
            description = "802.1Q VLAN id.";
          };
          cidr = mkOption {
            type = types.nullOr ucTypes.cidr;
            default = null;
            description = "Addressing of the VLAN, if it carries IP.";
          };
        };
      });
      default = {};
      example = {
        storage = {
          id = 20;
          cidr = "10.0.20.0/24";
        };
      };
      description = "Additional VLANs, by name.";
    };
  };
}
