# UltraCloud's Nix library. A function of nixpkgs' `lib` alone, so the schema
# can be evaluated (and tested) with any copy of nixpkgs/lib; the flake adds
# nixpkgs and the NixOS modules to build real systems.
{
  lib,
  nixpkgs ? null,
  nixosModules ? {},
  diskoModule ? null,
}: let
  schemaVersion = 1;
  ucTypes = import ./types.nix {inherit lib;};
  ucNet = import ./net.nix {inherit lib;};

  # The module list that defines `cluster.*`, its validation and rendering.
  schemaModules =
    import ./schema
    ++ import ./validation
    ++ [
      ./render/manifest.nix
      ({config, ...}: {
        _module.args.topology = import ./topology.nix {inherit lib;} config.cluster;
      })
    ];

  evalCluster = {
    modules,
    specialArgs ? {},
  }:
    lib.evalModules {
      modules = schemaModules ++ modules;
      specialArgs =
        {
          inherit ucTypes ucNet;
          ucSchemaVersion = schemaVersion;
        }
        // specialArgs;
    };

  # Refuses to go on when a validation rule fails; prints warnings.
  checked = config: value: let
    failed = map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);
    warned = lib.foldr (w: v: lib.warn w v) value config.warnings;
  in
    if failed != []
    then throw "\nUltraCloud cluster \"${config.cluster.name}\" is invalid:\n${lib.concatMapStrings (m: "- ${m}\n") failed}"
    else warned;

  mkNixosConfigurations = config: manifest:
    lib.mapAttrs (name: node:
      if nixpkgs == null
      then throw "mkCluster: nixosConfigurations.${name} needs nixpkgs; use the flake's `lib.mkCluster` (ultracloud.lib) rather than lib/default.nix alone."
      else
        nixpkgs.lib.nixosSystem {
          modules =
            builtins.attrValues nixosModules
            ++ lib.optional (diskoModule != null && manifest.nodes.${name}.install != null) {
              imports = [diskoModule];
              disko.devices = manifest.nodes.${name}.install.disko;
            }
            ++ [
              {
                networking.hostName = lib.mkDefault name;
                ultracloud = {
                  inherit manifest;
                  node = name;
                };
              }
            ]
            ++ node.extraModules;
        })
    config.cluster.nodes;

  mkCluster = args: let
    evaluated = evalCluster args;
    inherit (evaluated) config;
    manifest = checked config config.manifest;
  in {
    inherit config manifest;
    inherit (config) warnings;
    nixosConfigurations = checked config (mkNixosConfigurations config manifest);
  };
in {
  inherit schemaVersion evalCluster mkCluster schemaModules;
  types = ucTypes;
  net = ucNet;
}
