# The VM tests cannot run offline (no nixpkgs); this evaluates what can be:
# their clusters (mkCluster validation included) and test scripts, with
# stubs for pkgs and nixosSystem. checks/schema/run runs it.
{nixpkgsLib}: let
  lib = import nixpkgsLib;
  fake = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  };
  pkgs = {
    inherit lib;
    python3 = fake "python3";
    curl = fake "curl";
    etcd = fake "etcd";
    writeText = name: text: builtins.seq text "/nix/store/00000000000000000000000000000000-${name}";
    testers.runNixOSTest = args: args;
  };
  self.lib = import ../../lib {
    inherit lib;
    nixpkgs.lib.nixosSystem = args: args;
    nixosModules.default = {};
    installerBase = {};
  };
  tests = import ./default.nix {inherit pkgs self;};
in
  lib.mapAttrs (n: t: {
    nodes = lib.mapAttrs (_: m: builtins.length (m.imports or [])) t.nodes;
    script = builtins.stringLength (
      if builtins.isFunction t.testScript
      then t.testScript {nodes = lib.mapAttrs (_: _: {system.build.toplevel = "/nix/store/x-toplevel";}) t.nodes;}
      else t.testScript
    );
  })
  tests
