# Locates a local copy of nixpkgs' lib/ (offline machines cannot fetch
# nixpkgs). $ULTRACLOUD_NIXPKGS_LIB may point at a clone of
# nix-community/nixpkgs.lib or nixpkgs (the folder holding lib/), or at lib/
# itself. Prints the lib/ folder; fails when there is none.
find_nixpkgs_lib() {
  local base=${ULTRACLOUD_NIXPKGS_LIB:-/var/tmp/nixpkgs.lib}
  if [ -f "$base/lib/fixed-points.nix" ]; then
    echo "$base/lib"
  elif [ -f "$base/fixed-points.nix" ]; then
    echo "$base"
  else
    return 1
  fi
}
