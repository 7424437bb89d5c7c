# cluster.nodes.<name>: the machines, what they are for, and how to recognise
# and install them.
{
  lib,
  ucTypes,
  ...
}: let
  inherit (lib) mkOption types;
  layouts = import ../disko-layouts.nix;

  nodeModule = {name, ...}: {
    options = {
      name = mkOption {
        type = types.str;
        default = name;
        readOnly = true;
        description = "The node's name (its attribute name); also its host name.";
      };

      roles = mkOption {
        type = types.nonEmptyListOf (types.enum ["control-plane" "worker" "edge"]);
        example = ["control-plane" "worker"];
        description = ''
          What the node is for. `control-plane` runs the store, deployer and
          scheduler; `worker` runs service replicas and VMs; `edge` runs DNS and
          load balancers. Every node runs nix-agent and node-agent.
        '';
      };

      addresses = mkOption {
        type = types.nonEmptyListOf ucTypes.ipAddress;
        example = ["10.0.0.11"];
        description = ''
          Management addresses. The first is the one daemons bind to and
          advertise; it must lie inside `cluster.networks.management.cidr`.
        '';
      };

      identity = {
        macAddresses = mkOption {
          type = types.listOf ucTypes.macAddress;
          default = [];
          example = ["52:54:00:12:34:56"];
          description = "MAC addresses by which the installer recognises this machine at phone-home.";
        };
        dmiSerial = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "VMware-56 4d 1a";
          description = "DMI system serial (`/sys/class/dmi/id/product_serial`) by which the installer recognises this machine.";
        };
      };

      install = {
        disk = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "/dev/disk/by-id/nvme-Samsung_SSD_980_PRO_1TB_S5GXNF0R123456";
          description = "Target disk for a named layout; use a stable `/dev/disk/by-id/` path.";
        };
        layout = mkOption {
          type = types.enum (builtins.attrNames layouts);
          default = "standard";
          description = ''
            Named disk layout applied to `install.disk`: `standard` (EFI + ext4
            root) or `lvm` (EFI + LVM with root and /var/lib volumes).
          '';
        };
        disko = mkOption {
          type = types.nullOr (types.attrsOf types.anything);
          default = null;
          description = ''
            A full disko `devices` tree (what goes under `disko.devices`),
            used instead of `disk` + `layout`.
          '';
        };
      };

      extraModules = mkOption {
        type = types.listOf types.deferredModule;
        default = [];
        description = "Extra NixOS modules for this node's system.";
      };

      labels = mkOption {
        type = types.attrsOf types.str;
        default = {};
        example = {
          zone = "rack-a";
          disk = "ssd";
        };
        description = "Free-form labels matched by `services.<name>.placement.labels`.";
      };

      capacity = {
        cpuMillis = mkOption {
          type = types.ints.positive;
          default = 1000;
          example = 8000;
          description = "Schedulable CPU in thousandths of a core.";
        };
        memoryMiB = mkOption {
          type = types.ints.positive;
          default = 1024;
          example = 16384;
          description = "Schedulable memory in MiB.";
        };
      };
    };
  };
in {
  options.cluster.nodes = mkOption {
    type = types.attrsOf (types.submodule nodeModule);
    default = {};
    description = "The machines of the cluster, by host name.";
  };
}
