# Validation rules: each module adds `assertions` (refuse to render) or
# `warnings`. Messages name the option path and say how to fix it.
[
  ./names.nix
  ./addresses.nix
  ./identity.nix
  ./store.nix
  ./placement.nix
  ./references.nix
  ./lb.nix
  ./ports.nix
  ./secrets.nix
  ./rollout.nix
  ./secondaries.nix
  ./dnssec.nix
  ./iam.nix
]
