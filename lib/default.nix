# UltraCloud's Nix library. A function of nixpkgs' `lib` alone, so the schema
# can be evaluated (and tested) with any copy of nixpkgs/lib; the flake adds
# nixpkgs and the NixOS modules to build real systems.
{
  lib,
  nixpkgs ? null,
  nixosModules ? {},
  diskoModule ? null,
  # The base of the installer ISO (nixpkgs' installation-cd-minimal.nix).
  installerBase ? null,
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

  # The NixOS modules of one node: ours, its disko layout, its role
  # profiles, its name and manifest, and its extra modules. Also what the VM
  # tests give each test node.
  nodeModules = manifest: name: node:
    builtins.attrValues nixosModules
    ++ lib.optional (diskoModule != null && manifest.nodes.${name}.install != null) {
      imports = [diskoModule];
      disko.devices = manifest.nodes.${name}.install.disko;
    }
    # Role profiles: what a node of each role wants besides its daemons.
    ++ map (role: ../profiles/${role}.nix) node.roles
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

  mkNixosConfigurations = config: manifest:
    lib.mapAttrs (name: node:
      if nixpkgs == null
      then throw "mkCluster: nixosConfigurations.${name} needs nixpkgs; use the flake's `lib.mkCluster` (ultracloud.lib) rather than lib/default.nix alone."
      else nixpkgs.lib.nixosSystem {modules = nodeModules manifest name node;})
    config.cluster.nodes;

  # One ISO for every declared machine: it phones home to the deployers.
  mkInstaller = manifest:
    if nixpkgs == null || installerBase == null
    then throw "mkCluster: installer needs nixpkgs; use the flake's `lib.mkCluster` (ultracloud.lib)."
    else
      nixpkgs.lib.nixosSystem {
        modules = [
          installerBase
          ../profiles/installer.nix
          {
            ultracloud.installer = {
              cluster = manifest.cluster.name;
              deployers = lib.concatLists (lib.mapAttrsToList (_: node:
                lib.optional (node.daemons ? deployer) "http://${node.daemons.deployer.httpListen}")
              manifest.nodes);
            };
          }
        ];
      };

  mkCluster = args: let
    evaluated = evalCluster args;
    inherit (evaluated) config;
    manifest = checked config config.manifest;
  in {
    inherit config manifest;
    inherit (config) warnings;
    nixosConfigurations = checked config (mkNixosConfigurations config manifest);
    # Per node, the modules of its nixosConfiguration (for VM tests).
    nodeModules = checked config (lib.mapAttrs (nodeModules manifest) config.cluster.nodes);
    # `nix build .#installer.config.system.build.isoImage`
    installer = checked config (mkInstaller manifest);
  };
in {
  inherit schemaVersion evalCluster mkCluster schemaModules;
  types = ucTypes;
  net = ucNet;
}
