# The offline stand-in for nixpkgs' `nixosSystem`: our modules evaluated
# against the declarations of the NixOS options they set (./options.nix),
# with stand-in packages. `mkCluster` builds a cluster's nixosConfigurations
# that way; ./eval.nix and ./override.nix test what it gives.
{nixpkgsLib}: let
  lib = import nixpkgsLib;
  # Stand-ins for the packages our modules refer to; only their paths matter.
  fakePackage = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  };
  package = fakePackage "ultracloud";
  pkgs =
    lib.genAttrs [
      "bash"
      "bird2"
      "coreutils"
      "curl"
      "disko"
      "gawk"
      "jq"
      "nixos-install-tools"
      "util-linux"
    ]
    fakePackage
    // {
      # pkgs.formats.json's `type`, built as in nixpkgs' pkgs/pkgs-lib/formats.nix
      # (NixOS/nixpkgs 001740f0); `generate` needs a real pkgs and we do not use it.
      formats.json = {}: {
        type = let
          valueType =
            lib.types.nullOr (lib.types.oneOf [
              lib.types.bool
              lib.types.int
              lib.types.float
              lib.types.str
              lib.types.path
              (lib.types.attrsOf valueType)
              (lib.types.listOf valueType)
            ])
            // {
              description = "JSON value";
            };
        in
          valueType;
      };
    };
  offlineNixpkgs.lib.nixosSystem = {modules}:
    lib.evalModules {
      modules =
        [
          ./options.nix
          {
            _module.args.pkgs = pkgs;
            nix.package = fakePackage "nix";
            systemd.package = fakePackage "systemd";
          }
        ]
        ++ modules;
    };
  ultracloud = import ../../lib {
    inherit lib;
    nixpkgs = offlineNixpkgs;
    # As the flake's nixosModules.default: our modules and the package.
    nixosModules.default = {
      imports = [../../modules];
      ultracloud.package = package;
    };
    # nixpkgs' installation CD cannot be evaluated offline; the profile can.
    installerBase = {};
  };
in {
  inherit lib package;
  mkCluster = modules: ultracloud.mkCluster {inherit modules;};
}
