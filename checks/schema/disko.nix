# Type-checks every node's rendered install layout (manifest.nodes.<n>.install.disko)
# against disko's own `devices` type, with a local clone of disko. Evaluates to
# the names of the nodes checked; a layout disko would refuse throws.
{
  nixpkgsLib,
  disko,
  modules,
}: let
  lib = import nixpkgsLib;
  diskoLib = import (disko + "/lib") {
    inherit lib;
    # Only needed for disko's VM tests, which this does not run.
    makeTest = null;
    eval-config = null;
    qemu-common = null;
  };
  ultracloud = import ../../lib {inherit lib;};
  inherit (ultracloud.mkCluster {inherit modules;}) manifest;
  devicesOf = name: layout:
    (lib.evalModules {
      modules = [
        {
          options.devices = lib.mkOption {type = diskoLib.toplevel;};
          config.devices = layout;
          config._module.args.name = name;
        }
      ];
    })
    .config
    .devices;
  installable = lib.filterAttrs (_: n: n.install != null) manifest.nodes;
in
  lib.mapAttrsToList (name: node: let
    devices = devicesOf name node.install.disko;
  in
    # Forcing _meta and _config makes disko resolve every device and partition.
    builtins.deepSeq [devices._meta devices._config] name)
  installable
