# `nix flake check`: the Rust workspace (built and tested), the schema tests
# against this nixpkgs' lib, the formatter, and the NixOS VM tests (./vm).
{
  pkgs,
  self,
}:
{
  package = self.packages.${pkgs.stdenv.hostPlatform.system}.default;

  schema =
    pkgs.runCommand "ultracloud-schema-tests" {
      nativeBuildInputs = [pkgs.nix pkgs.python3];
    } ''
      # A private store, as nixpkgs' own lib tests do inside the sandbox.
      export TEST_ROOT=$PWD/test-tmp HOME=$(mktemp -d)
      export NIX_CONF_DIR=$TEST_ROOT/etc NIX_LOCALSTATE_DIR=$TEST_ROOT/var
      export NIX_LOG_DIR=$TEST_ROOT/var/log/nix NIX_STATE_DIR=$TEST_ROOT/var/nix
      export NIX_STORE_DIR=$TEST_ROOT/store
      nix-store --init
      cp -r ${self} src && chmod -R u+w src && cd src
      export ULTRACLOUD_NIXPKGS_LIB=${pkgs.path} ULTRACLOUD_DISKO=${self.inputs.disko}
      bash checks/schema/run
      bash checks/schema/run-disko
      touch $out
    '';

  format = pkgs.runCommand "ultracloud-format" {nativeBuildInputs = [pkgs.alejandra];} ''
    alejandra --check ${self} && touch $out
  '';
}
// import ./vm {inherit pkgs self;}
