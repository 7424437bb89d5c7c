{
  description = "UltraCloud: a self-hostable, Nix-native cloud platform";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";
    disko = {
      url = "github:nix-community/disko";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs = {
    self,
    nixpkgs,
    disko,
  }: let
    systems = ["x86_64-linux" "aarch64-linux"];
    forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
  in {
    # `ultracloud.lib.mkCluster { modules = [ ./cluster.nix ]; }`
    lib = import ./lib {
      inherit (nixpkgs) lib;
      inherit nixpkgs;
      nixosModules = {inherit (self.nixosModules) default;};
      diskoModule = disko.nixosModules.disko;
      installerBase = "${nixpkgs}/nixos/modules/installer/cd-dvd/installation-cd-minimal.nix";
    };

    nixosModules.default = {
      lib,
      pkgs,
      ...
    }: {
      imports = [./modules];
      ultracloud.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
    };

    packages = forAllSystems (pkgs: {
      default = pkgs.callPackage ./rust/package.nix {};
    });

    checks = forAllSystems (pkgs:
      import ./checks {
        inherit pkgs self;
      });

    templates = {
      single-node = {
        path = ./templates/single-node;
        description = "One machine running every UltraCloud role";
      };
      ha = {
        path = ./templates/ha;
        description = "Three control-plane nodes, two workers and an edge node";
      };
      baremetal = {
        path = ./templates/baremetal;
        description = "Three bare-metal machines running every role, installed from the installer ISO";
      };
      default = self.templates.single-node;
    };

    formatter = forAllSystems (pkgs: pkgs.alejandra);
  };
}
