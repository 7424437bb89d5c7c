# Builds each node's NixOS configuration of a cluster through mkCluster, with
# `nixosSystem` replaced by an evaluation of our modules against the NixOS
# option declarations in ./options.nix. Evaluates to the list of failures:
# [] when every node's /etc/ultracloud/<daemon>.json holds exactly
# manifest.nodes.<node>.daemons.<daemon> and nothing else under ultracloud/.
{
  nixpkgsLib,
  modules,
}: let
  lib = import nixpkgsLib;
  offlineNixpkgs.lib.nixosSystem = {modules}:
    lib.evalModules {modules = [./options.nix] ++ modules;};
  ultracloud = import ../../lib {
    inherit lib;
    nixpkgs = offlineNixpkgs;
    nixosModules.default = ../../modules;
  };
  cluster = ultracloud.mkCluster {inherit modules;};

  nodeFailures = name: system: let
    inherit (system) config;
    daemons = cluster.manifest.nodes.${name}.daemons;
    ours = lib.filterAttrs (path: _: lib.hasPrefix "ultracloud/" path) config.environment.etc;
    expected = lib.mapAttrs' (d: _: lib.nameValuePair "ultracloud/${d}.json" null) daemons;
    failedAssertions = builtins.filter (a: !a.assertion) config.assertions;
  in
    map (a: "${name}: assertion failed: ${a.message}") failedAssertions
    ++ lib.optional (config.networking.hostName != name) "${name}: networking.hostName is ${config.networking.hostName}"
    ++ lib.optional (builtins.attrNames ours != builtins.attrNames expected)
    "${name}: /etc has ${builtins.toJSON (builtins.attrNames ours)}, expected ${builtins.toJSON (builtins.attrNames expected)}"
    ++ lib.concatLists (lib.mapAttrsToList (d: settings: let
      file = ours."ultracloud/${d}.json" or null;
    in
      lib.optional (file == null || builtins.fromJSON file.text != settings || file.mode != "0444")
      "${name}: /etc/ultracloud/${d}.json differs from manifest.nodes.${name}.daemons.${d}")
    daemons);
in
  lib.concatLists (lib.mapAttrsToList nodeFailures cluster.nixosConfigurations)
