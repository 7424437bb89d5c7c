# Option types shared by the schema. Name checks live here so that validation
# and rendering agree on what a valid name is.
{lib}: let
  inherit (lib) types;
  net = import ./net.nix {inherit lib;};

  dnsLabelRegex = "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?";
  # Record owner labels may also be `_service` style or a wildcard.
  recordLabelRegex = "(\\*|_?[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?)";
in rec {
  isDnsLabel = s: builtins.match dnsLabelRegex s != null;

  isDnsName = s: let
    trimmed = lib.removeSuffix "." s;
    labels = lib.splitString "." trimmed;
  in
    trimmed != "" && builtins.stringLength trimmed <= 253 && lib.all isDnsLabel labels;

  isRecordName = s:
    s == "@" || lib.all (l: builtins.match recordLabelRegex l != null) (lib.splitString "." (lib.removeSuffix "." s));

  isSecretPath = p: builtins.isString p && lib.hasPrefix "/" p && !(lib.hasPrefix builtins.storeDir p);

  ipAddress =
    types.addCheck types.str net.isIP
    // {
      name = "ipAddress";
      description = "IPv4 or IPv6 address";
    };

  cidr =
    types.addCheck types.str net.isCidr
    // {
      name = "cidr";
      description = "network in CIDR notation (e.g. 10.0.0.0/24)";
    };

  macAddress =
    types.strMatching "([0-9a-f]{2}:){5}[0-9a-f]{2}"
    // {
      description = "MAC address in lower case, colon separated (e.g. 52:54:00:12:34:56)";
    };

  # Accepts Nix path values too, so that validation can explain why they are
  # wrong instead of a bare type error. Never interpolate a value of this type
  # into a string: that would copy the secret into the Nix store.
  secretPath = lib.mkOptionType {
    name = "secretPath";
    description = "absolute path, as a string, to a secret file on the target machine";
    check = v: builtins.isString v || builtins.isPath v;
    merge = lib.mergeEqualOption;
  };

  cachePublicKey =
    types.strMatching "[A-Za-z0-9._-]+:[A-Za-z0-9+/]{43}="
    // {
      description = "Nix binary cache public key (name:base64, as printed by nix-store --generate-binary-cache-key)";
    };
}
