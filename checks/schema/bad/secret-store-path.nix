# expect: cluster.services.api.secretFiles.API_TOKEN is the Nix path
# expect: a secret given as a Nix path is copied into the world-readable Nix store. Give the path of the file on the node as a string instead, e.g. "/run/secrets/base.nix"
{cluster.services.api.secretFiles.API_TOKEN = ../base.nix;}
