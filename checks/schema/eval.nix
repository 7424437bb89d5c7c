# Evaluates a cluster with the local copy of nixpkgs' lib, for the schema
# tests and scripts/demo: `attr` is `manifest` (checked, throws on invalid
# input) or `warnings`.
{
  nixpkgsLib,
  modules,
  attr ? "manifest",
}: let
  lib = import nixpkgsLib;
  ultracloud = import ../../lib {inherit lib;};
in
  (ultracloud.mkCluster {inherit modules;}).${attr}
