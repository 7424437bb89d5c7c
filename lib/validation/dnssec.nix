# A signed zone needs its key, and the key is a secret: a path on the DNS
# nodes outside the Nix store, never a Nix path (copied into the store).
{
  lib,
  config,
  ucTypes,
  ...
}: let
  zoneRules = zone: z: let
    path = "cluster.dns.zones.\"${zone}\".dnssec";
    key = z.dnssec.keyFile;
  in [
    {
      assertion = !z.dnssec.enable || key != null;
      message = "${path}.enable is set but ${path}.keyFile is not: give the path of the zone's ECDSA P-256 key on the DNS nodes, e.g. \"/run/keys/${zone}.pem\" (make it with `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ${zone}.pem`).";
    }
    {
      assertion = key == null || ucTypes.isSecretPath key;
      message =
        if builtins.isPath key
        then "${path}.keyFile is the Nix path ${toString key}: the zone's private key would be copied into the world-readable Nix store. Give the path of the file on the DNS nodes as a string, e.g. \"/run/keys/${zone}.pem\", and provision it out of band (agenix, sops-nix, or by hand)."
        else "${path}.keyFile = \"${toString key}\" is not an absolute path outside the Nix store; give the path of the zone's private key on the DNS nodes, e.g. \"/run/keys/${zone}.pem\".";
    }
  ];
in {
  assertions = lib.concatLists (lib.mapAttrsToList zoneRules config.cluster.dns.zones);
}
